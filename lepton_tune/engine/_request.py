"""Requests as the parent tracks them, input checks, and future settling."""

from __future__ import annotations

import time
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lepton_tune.exceptions import EngineInputError, EngineTimeoutError

__all__ = ["Request", "as_images", "fail", "settle", "timeout_error", "watch_deadlines"]

_TICK_S = 0.1


@dataclass(eq=False)
class Request:
    """One image on its way through the engine."""

    image: np.ndarray
    key: bytes | None
    deadline: float
    future: Future[np.ndarray] = field(default_factory=Future)
    attempts: int = 0
    lane: int = -1
    crashed_pids: list[int] = field(default_factory=list)


def as_images(data: Any, shape: tuple[int, ...] | None, *, batched: bool) -> np.ndarray:
    """Return ``data`` as a C-contiguous float32 array of ``(N, *shape)`` or ``shape``.

    Raises:
        EngineInputError: the dtype is not float32 or the shape does not match, naming both.

    Example:
        >>> as_images(np.zeros((2, 3), np.float32), (3,), batched=True).shape
        (2, 3)
    """
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    array = np.asarray(data)
    what = "predict() batch" if batched else "submit() image"
    if array.dtype != np.float32:
        raise EngineInputError(
            f"engine input: {what} has dtype {array.dtype}, expected float32. Convert it with .astype(np.float32)"
        )
    if shape is not None:
        want = ("N", *shape) if batched else shape
        got_ok = array.shape[1:] == shape if batched else array.shape == shape
        if not got_ok or (batched and array.ndim != len(shape) + 1):
            raise EngineInputError(
                f"engine input: {what} has shape {tuple(array.shape)}, expected {tuple(want)} "
                f"(the engine's input_shape is {tuple(shape)})"
            )
    elif batched and array.ndim < 2:
        raise EngineInputError(
            f"engine input: predict() batch has shape {tuple(array.shape)}, expected (N, *image_shape)"
        )
    return np.ascontiguousarray(array)


def settle(future: Future[np.ndarray], value: np.ndarray) -> None:
    """Set a result unless the future already finished (timed out, failed)."""
    if not future.done():
        try:
            future.set_result(value)
        except InvalidStateError:  # lost a race with a timeout; the first outcome stands
            return


def fail(future: Future[np.ndarray], error: BaseException) -> None:
    """Set an exception unless the future already finished."""
    if not future.done():
        try:
            future.set_exception(error)
        except InvalidStateError:  # lost a race; the first outcome stands
            return


def timeout_error(timeout_s: float, where: str, hint: str) -> EngineTimeoutError:
    """The error for a request past its deadline."""
    return EngineTimeoutError(
        f"engine: no answer within request_timeout_s = {timeout_s:g} s ({where}). Raise request_timeout_s, {hint}"
    )


def watch_deadlines(owner: Any, waiting: str) -> None:
    """Fail ``owner``'s requests past their deadline until it closes, so that every wait ends.

    ``owner`` is a dispatcher: ``closed``, ``lock``, ``pending``, ``lanes`` (each with ``inflight``)
    and ``timeout_error(where)``; ``waiting`` names where a request without a lane waits.
    """
    while not owner.closed:
        time.sleep(_TICK_S)
        now = time.monotonic()
        with owner.lock:
            late = [r for r in owner.pending if r.deadline < now and not r.future.done()]
            for lane in owner.lanes:
                late.extend(r for r in lane.inflight.values() if r.deadline < now and not r.future.done())
        for req in late:
            fail(req.future, owner.timeout_error(f"lane {req.lane}" if req.lane >= 0 else waiting))
