"""How a module travels to a shard: its tensors as shared memory, the rest as pickled bytes.

The module is pickled in the parent with every plain CPU tensor replaced by an index into a
list of views. The storages behind those tensors are first gathered into one shared-memory
buffer (each storage copied once, byte for byte and 64-byte aligned, and the module's own tensors
re-pointed to it, so views and tied weights still share and the parent holds no second copy). The
buffer goes with the shard's launch arguments as a single file descriptor: a process start can
pass at most ~250 of them, fewer than the tensors of mobilenet_v3_large or efficientnet_b0. A
second lane of the same module finds its tensors already in one buffer and copies nothing. The
bytes are unpickled inside the shard's own error handling, so a model that cannot load there is
reported with its traceback.

Quantized tensors stay in the bytes (torch cannot rebuild their shared storage), and torch's
quantized modules do not unpickle on their own (their ``__setstate__`` runs before
``Module.__init__``), so they are rebuilt the way their ``__deepcopy__`` does it; each shard then
owns a private copy of its int8 weights.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass, field
from typing import Any

import torch

__all__ = ["Parcel", "unwrap", "wrap"]


_ALIGN = 64  # bytes; every storage starts on a cache line, and so on a multiple of any itemsize


@dataclass(frozen=True)
class _View:
    """Where one tensor lives in a parcel's buffers: which buffer, and its dtype, offset and geometry."""

    buffer: int
    dtype: torch.dtype
    offset: int  # in elements of ``dtype``
    size: tuple[int, ...]
    stride: tuple[int, ...]
    parameter: bool
    requires_grad: bool


@dataclass
class Parcel:
    """A pickled module and the shared buffers its tensors live in (sent as shared memory)."""

    data: bytes
    buffers: list[torch.Tensor] = field(default_factory=list)
    views: list[_View] = field(default_factory=list)

    def tensor(self, index: int) -> torch.Tensor:
        """Tensor ``index`` of the module, a view of its buffer (no copy)."""
        view = self.views[index]
        base = self.buffers[view.buffer]
        with torch.no_grad():
            tensor = torch.empty(0, dtype=view.dtype).set_(base.untyped_storage(), view.offset, view.size, view.stride)
        if view.parameter:
            return torch.nn.Parameter(tensor, requires_grad=view.requires_grad)
        return tensor


def _rebuild(cls: type[torch.nn.Module], state: object) -> torch.nn.Module:
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    module.__setstate__(state)  # type: ignore[no-untyped-call]
    return module


def _shareable(obj: torch.Tensor) -> bool:
    return (
        obj.device.type == "cpu"
        and obj.layout == torch.strided
        and not obj.is_quantized
        and (obj.grad_fn is None)
        and obj.untyped_storage().nbytes() > 0
    )


class _Pickler(pickle.Pickler):
    def __init__(self, file: io.BytesIO) -> None:
        super().__init__(file, protocol=pickle.HIGHEST_PROTOCOL)
        self.tensors: list[torch.Tensor] = []
        self._seen: dict[int, int] = {}

    def persistent_id(self, obj: object) -> Any:
        if isinstance(obj, torch.Tensor) and _shareable(obj):
            if id(obj) not in self._seen:
                self._seen[id(obj)] = len(self.tensors)
                self.tensors.append(obj)
            return self._seen[id(obj)]
        return None

    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if (
            isinstance(obj, torch.nn.Module)
            and ".quantized" in kind.__module__
            and kind.__setstate__ is not torch.nn.Module.__setstate__  # type: ignore[attr-defined]
        ):
            return _rebuild, (kind, obj.__getstate__())  # type: ignore[no-untyped-call]
        return NotImplemented


class _Unpickler(pickle.Unpickler):
    def __init__(self, file: io.BytesIO, parcel: Parcel) -> None:
        super().__init__(file)
        self.parcel = parcel
        self.loaded: dict[int, torch.Tensor] = {}

    def persistent_load(self, pid: Any) -> torch.Tensor:
        if pid not in self.loaded:
            self.loaded[pid] = self.parcel.tensor(pid)
        return self.loaded[pid]


def _gather(tensors: list[torch.Tensor]) -> torch.Tensor:
    """One shared buffer holding every distinct storage of ``tensors``, which are re-pointed into it."""
    storages: dict[int, tuple[torch.UntypedStorage, int]] = {}  # data_ptr -> (storage, byte offset in buffer)
    total = 0
    for tensor in tensors:
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in storages:
            storages[storage.data_ptr()] = (storage, total)
            total += -(-storage.nbytes() // _ALIGN) * _ALIGN
    if len(storages) == 1:
        only = next(iter(storages.values()))[0]
        single: torch.Tensor = torch.empty(0, dtype=torch.uint8).set_(only).share_memory_()  # type: ignore[no-untyped-call]
        return single
    buffer: torch.Tensor = torch.empty(total, dtype=torch.uint8).share_memory_()  # type: ignore[no-untyped-call]
    for storage, start in storages.values():
        buffer[start : start + storage.nbytes()].copy_(torch.empty(0, dtype=torch.uint8).set_(storage))
    with torch.no_grad():
        for tensor in tensors:
            start = storages[tensor.untyped_storage().data_ptr()][1] // tensor.element_size()
            offset = start + tensor.storage_offset()
            tensor.set_(buffer.untyped_storage(), offset, tensor.size(), tensor.stride())
    return buffer


def _view(tensor: torch.Tensor) -> _View:
    return _View(
        buffer=0,
        dtype=tensor.dtype,
        offset=int(tensor.storage_offset()),
        size=tuple(int(n) for n in tensor.size()),
        stride=tuple(int(n) for n in tensor.stride()),
        parameter=isinstance(tensor, torch.nn.Parameter),
        requires_grad=tensor.requires_grad,
    )


def wrap(module: torch.nn.Module) -> Parcel:
    """Pack ``module`` for a shard.

    Example:
        >>> unwrap(wrap(torch.nn.Linear(2, 2))).out_features
        2
    """
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    pickler.dump(module)
    if not pickler.tensors:
        return Parcel(data=buffer.getvalue())
    shared = _gather(pickler.tensors)
    views = [_view(tensor) for tensor in pickler.tensors]
    return Parcel(data=buffer.getvalue(), buffers=[shared], views=views)


def unwrap(parcel: Parcel) -> torch.nn.Module:
    """The module inside ``parcel``; it refers to the parcel's shared buffer, not copies."""
    module: torch.nn.Module = _Unpickler(io.BytesIO(parcel.data), parcel).load()
    return module
