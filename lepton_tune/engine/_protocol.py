"""The byte messages between the parent and the shards: a kind byte, then int32 slot indices.

- ``R`` + slots: run these slots (parent -> first stage, stage -> next stage).
- ``D`` + float64 peak device MiB (-1 on CPU) + slots: these output slots are ready (last stage).
- ``E`` + int32 count + slots + UTF-8 text: the model raised on these slots.
- ``K``: the shard loaded its model and is ready. ``X`` + text: it could not start.
- ``Q``: quit.
"""

from __future__ import annotations

import struct

import numpy as np

__all__ = [
    "BROKEN",
    "DONE",
    "FAIL",
    "QUIT",
    "READY",
    "RUN",
    "pack_done",
    "pack_fail",
    "pack_slots",
    "unpack_done",
    "unpack_fail",
    "unpack_slots",
]

RUN, DONE, FAIL, READY, BROKEN, QUIT = b"R", b"D", b"E", b"K", b"X", b"Q"


def pack_slots(kind: bytes, slots: list[int]) -> bytes:
    """``kind`` followed by the slots as int32.

    Example:
        >>> unpack_slots(pack_slots(RUN, [3, 1]))
        [3, 1]
    """
    return kind + np.asarray(slots, dtype=np.int32).tobytes()


def unpack_slots(message: bytes) -> list[int]:
    """The slots of a ``pack_slots`` message."""
    slots: list[int] = np.frombuffer(message, dtype=np.int32, offset=1).tolist()
    return slots


def pack_done(slots: list[int], peak_mib: float) -> bytes:
    """A DONE message carrying the shard's peak device memory."""
    return DONE + struct.pack("<d", peak_mib) + np.asarray(slots, dtype=np.int32).tobytes()


def unpack_done(message: bytes) -> tuple[list[int], float]:
    """``(slots, peak_mib)`` of a DONE message."""
    (peak,) = struct.unpack_from("<d", message, 1)
    return np.frombuffer(message, dtype=np.int32, offset=9).tolist(), peak


def pack_fail(slots: list[int], text: str) -> bytes:
    """A FAIL message: the model raised ``text`` on ``slots``."""
    return FAIL + struct.pack("<i", len(slots)) + np.asarray(slots, dtype=np.int32).tobytes() + text.encode()


def unpack_fail(message: bytes) -> tuple[list[int], str]:
    """``(slots, text)`` of a FAIL message."""
    (count,) = struct.unpack_from("<i", message, 1)
    slots = np.frombuffer(message, dtype=np.int32, count=count, offset=5).tolist()
    return slots, message[5 + 4 * count :].decode(errors="replace")
