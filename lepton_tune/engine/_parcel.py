"""How a module travels to a shard: shared-memory tensors, or bytes for quantized modules.

A module is pickled in the parent and unpickled inside the shard's own error handling, so a model
that cannot load there is reported with its traceback. Plain tensors go through
torch.multiprocessing pickling (their storage moves to shared memory once and every shard maps
it). Quantized tensors cannot travel that way (torch cannot rebuild their shared storage), and torch's quantized modules do not unpickle (their ``__setstate__`` runs before
``Module.__init__``), so a quantized model is pickled to bytes with a reducer that rebuilds those
modules the way their ``__deepcopy__`` does; each shard owns a private copy of its int8 weights.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from multiprocessing.reduction import ForkingPickler
from typing import Any

import torch
import torch.multiprocessing  # registers torch's tensor reductions with ForkingPickler

__all__ = ["Parcel", "unwrap", "wrap"]


@dataclass
class Parcel:
    """A pickled module; ``shared``: its tensors travel as shared-memory handles."""

    data: bytes
    shared: bool


def _quantized(module: torch.nn.Module) -> bool:
    return any(".quantized" in type(m).__module__ for m in module.modules()) or any(
        t.is_quantized for t in [*module.parameters(), *module.buffers()])


def _rebuild(cls: type[torch.nn.Module], state: object) -> torch.nn.Module:
    module = cls.__new__(cls)
    torch.nn.Module.__init__(module)
    module.__setstate__(state)
    return module


class _Pickler(pickle.Pickler):
    def reducer_override(self, obj: object) -> Any:
        kind = type(obj)
        if (isinstance(obj, torch.nn.Module) and ".quantized" in kind.__module__
                and kind.__setstate__ is not torch.nn.Module.__setstate__):  # type: ignore[attr-defined]
            return _rebuild, (kind, obj.__getstate__())  # type: ignore[attr-defined]
        return NotImplemented


def wrap(module: torch.nn.Module) -> Parcel:
    """Pack ``module`` for a shard.

    Example:
        >>> unwrap(wrap(torch.nn.Linear(2, 2))).out_features
        2
    """
    if not _quantized(module):
        return Parcel(data=bytes(ForkingPickler.dumps(module)), shared=True)
    buffer = io.BytesIO()
    _Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(module)
    return Parcel(data=buffer.getvalue(), shared=False)


def unwrap(parcel: Parcel) -> torch.nn.Module:
    """The module inside ``parcel``."""
    return pickle.loads(parcel.data)
