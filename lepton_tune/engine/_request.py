"""Requests as the parent tracks them, input checks, and future settling."""

from __future__ import annotations

from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lepton_tune.exceptions import EngineInputError

__all__ = ["Request", "as_images", "fail", "settle"]


@dataclass(eq=False)
class Request:
    """One image on its way through the engine."""

    image: np.ndarray
    key: bytes | None
    deadline: float
    future: Future = field(default_factory=Future)
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


def settle(future: Future, value: np.ndarray) -> None:
    """Set a result unless the future already finished (timed out, failed)."""
    if not future.done():
        try:
            future.set_result(value)
        except InvalidStateError:  # lost a race with a timeout; the first outcome stands
            return


def fail(future: Future, error: BaseException) -> None:
    """Set an exception unless the future already finished."""
    if not future.done():
        try:
            future.set_exception(error)
        except InvalidStateError:  # lost a race; the first outcome stands
            return
