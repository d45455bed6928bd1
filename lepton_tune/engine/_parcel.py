"""How a module travels to a shard: its tensors as shared memory, the rest as pickled bytes.

The module is pickled in the parent with every plain CPU tensor replaced by an index into a
tensor list. The list goes with the shard's launch arguments (torch.multiprocessing moves each
storage into shared memory once and passes all the file descriptors in one message, which is fast),
and the bytes are unpickled inside the shard's own error handling, so a model that cannot load
there is reported with its traceback.

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


@dataclass
class Parcel:
    """A pickled module and the tensors it refers to (sent to the shard as shared memory)."""

    data: bytes
    tensors: list[torch.Tensor] = field(default_factory=list)


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
    def __init__(self, file: io.BytesIO, tensors: list[torch.Tensor]) -> None:
        super().__init__(file)
        self.tensors = tensors

    def persistent_load(self, pid: Any) -> torch.Tensor:
        tensor: torch.Tensor = self.tensors[pid]
        return tensor


def wrap(module: torch.nn.Module) -> Parcel:
    """Pack ``module`` for a shard.

    Example:
        >>> unwrap(wrap(torch.nn.Linear(2, 2))).out_features
        2
    """
    buffer = io.BytesIO()
    pickler = _Pickler(buffer)
    pickler.dump(module)
    return Parcel(data=buffer.getvalue(), tensors=pickler.tensors)


def unwrap(parcel: Parcel) -> torch.nn.Module:
    """The module inside ``parcel``; it refers to the parcel's tensors, not copies."""
    module: torch.nn.Module = _Unpickler(io.BytesIO(parcel.data), parcel.tensors).load()
    return module
