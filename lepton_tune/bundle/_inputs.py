"""The input forms a served bundle accepts, told apart by name and dtype, never by guessing from values.

MLflow hands ``predict`` whatever its parser made of the request: a numpy array, a dict of them, a
pandas DataFrame, or (in process) a list. Three forms are accepted:

- ``files``: encoded image files (PNG, JPEG, WebP, ... any size and mode), as base64 strings (optionally
  a ``data:image/...;base64,`` URL) or raw bytes: a 1-D column of them.
- ``pixels``: ``uint8`` pixel arrays ``[N, H, W]`` (grey) or ``[N, H, W, C]`` (C = 1, 3 or 4), any size.
  JSON has no uint8, so integer arrays are accepted when every value is 0-255.
- ``images``: the preprocessed float32 tensor ``[N, C, H, W]`` the engine runs (rows of ``C*H*W`` too).

Unnamed input is told apart by dtype: strings/bytes are files, integers are pixels, floats are the
tensor. A string is always base64 data, never a path: the server reads no file a request names.
A breach of a rule is a :class:`DataError` naming the input, the rule and the value (HTTP 400).
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_tune.data import MAX_IMAGE_BYTES, EncodedImage, PixelArray
from lepton_tune.exceptions import DataError

__all__ = ["FORMS", "ParsedInput", "parse_input"]

#: The input names a request may use, with what each holds.
FORMS = {
    "files": "encoded image files (base64 strings or bytes)",
    "pixels": "uint8 pixels [N, H, W] or [N, H, W, C]",
    "images": "preprocessed float32 [N, C, H, W]",
}
#: Longest base64 text of a file within MAX_IMAGE_BYTES (checked before decoding anything).
_MAX_B64_CHARS = 4 * ((MAX_IMAGE_BYTES + 2) // 3)


@dataclass(frozen=True)
class ParsedInput:
    """One request: ``form`` and either ``tensor`` (form ``images``) or ``sources`` (files or pixels)."""

    form: str
    tensor: np.ndarray | None = None
    sources: list[Any] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.tensor) if self.tensor is not None else len(self.sources)


def parse_input(model_input: Any, input_shape: tuple[int, ...]) -> ParsedInput:
    """Tell the request's form apart and check it; ``input_shape``: the engine's ``(C, H, W)``.

    Example:
        >>> parse_input({"pixels": np.zeros((2, 5, 7), np.uint8)}, (3, 16, 16)).form
        'pixels'

    Raises:
        DataError: unknown input name, a dtype or shape no form accepts, bad base64, pixel values
            outside 0-255 (the message names the input and the rule).
    """
    name, value = _unwrap(model_input)
    if hasattr(value, "to_numpy") and hasattr(value, "columns"):  # a pandas DataFrame
        return _frame(name, value, input_shape)
    if isinstance(value, (bytes, bytearray, memoryview, str)):
        value = [value]
    if isinstance(value, (list, tuple)) and any(isinstance(v, (bytes, bytearray, memoryview, str)) for v in value):
        return _files(name or "files", list(value))
    try:
        array = np.asarray(value)
    except ValueError as exc:  # ragged nested lists
        raise DataError(
            f"{name or 'input'}: not a rectangular array ({str(exc)[:120]}). Send images of one size "
            "per request, or send them as 'files'"
        ) from None
    if array.dtype.kind in "USO" and array.ndim <= 1:
        return _files(name or "files", list(array.reshape(-1)))
    if name == "files" and array.size == 0:
        return ParsedInput("files")
    if name == "files":
        raise DataError(f"files: must be a column of base64 strings or bytes, got {array.dtype} {list(array.shape)}")
    if name == "pixels" or (name is None and array.dtype.kind in "ui"):
        return _pixels(name or "pixels", array)
    if array.dtype.kind != "f":
        raise DataError(f"{name or 'input'}: dtype {array.dtype} is not an accepted input ({_forms()})")
    return ParsedInput("images", tensor=_tensor(name or "images", array, input_shape))


def _forms() -> str:
    return "; ".join(f"{k}: {v}" for k, v in FORMS.items())


def _unwrap(model_input: Any) -> tuple[str | None, Any]:
    """``{name: value}`` -> ``(name, value)``; anything else has no name."""
    if not isinstance(model_input, dict):
        return None, model_input
    if len(model_input) != 1 or next(iter(model_input)) not in FORMS:
        raise DataError(
            f"input names {sorted(map(str, model_input))}: send exactly one of {', '.join(FORMS)} ({_forms()})"
        )
    return next(iter(model_input.items()))


def _frame(name: str | None, frame: Any, input_shape: tuple[int, ...]) -> ParsedInput:
    """A DataFrame: one column of files (named ``files`` or holding str/bytes), else rows of flattened images."""
    columns = [str(c) for c in frame.columns]
    if len(columns) == 1 and getattr(frame.dtypes.iloc[0], "kind", "O") not in "biufc":  # object or pandas str
        cells = list(frame.iloc[:, 0])
        if columns[0] == "files" or all(isinstance(c, (bytes, bytearray, memoryview, str)) for c in cells):
            return _files("files", cells)
        if columns[0] == "pixels":
            return _pixels("pixels", np.stack([np.asarray(c) for c in cells]) if cells else np.zeros((0, 0, 0)))
        rows = np.stack([np.asarray(c, dtype=np.float32).reshape(-1) for c in cells]) if cells else np.zeros((0, 0))
        return ParsedInput("images", tensor=_tensor(columns[0], rows, input_shape))
    if "files" in columns or "pixels" in columns:
        raise DataError(f"columns {columns}: a 'files' or 'pixels' column must be the only column")
    return ParsedInput("images", tensor=_tensor(name or "images", frame.to_numpy(), input_shape))


def _files(name: str, cells: list[Any]) -> ParsedInput:
    return ParsedInput("files", sources=[_encoded(f"{name}[{i}]", cell) for i, cell in enumerate(cells)])


def _encoded(name: str, cell: Any) -> EncodedImage:
    """One cell of a files column as the file's bytes: raw bytes as they are, text as (data-URL) base64."""
    if isinstance(cell, (bytes, bytearray, memoryview)):
        return EncodedImage(bytes(cell), name)
    if not isinstance(cell, str):
        raise DataError(f"{name}: must be a base64 string or bytes of an image file, got {type(cell).__name__}")
    text = cell.strip()
    if text.startswith("data:") and ";base64," in text[:100]:
        text = text.split(",", 1)[1]
    if len(text) > _MAX_B64_CHARS:
        raise DataError(
            f"{name}: {len(text) * 3 / 4 / 2**20:.1f} MiB, over the {MAX_IMAGE_BYTES >> 20} MiB limit for "
            "one image file. Downscale or re-encode it"
        )
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise DataError(
            f"{name}: not valid base64 ({exc}); send the image file encoded with base64 (e.g. base64 -w0 image.png)"
        ) from None
    return EncodedImage(data, name)


def _pixels(name: str, array: np.ndarray) -> ParsedInput:
    """uint8 ``[N, H, W]`` / ``[N, H, W, C]``; integer arrays within 0-255 (JSON has no uint8) become uint8."""
    if array.dtype.kind in "ui" and array.dtype != np.uint8:
        if array.size and (int(array.min()) < 0 or int(array.max()) > 255):
            raise DataError(
                f"{name}: pixels must be uint8 (0-255), got {array.dtype} values from {int(array.min())} "
                f"to {int(array.max())}. Send 8-bit pixels, or the encoded file"
            )
        array = array.astype(np.uint8)
    if array.dtype != np.uint8:
        raise DataError(
            f"{name}: pixels must be uint8 (0-255), got {array.dtype}. Send 8-bit integer pixels, the "
            "encoded file as 'files', or the preprocessed float32 tensor as 'images'"
        )
    if array.ndim not in (3, 4) or (array.ndim == 4 and array.shape[3] not in (1, 3, 4)):
        raise DataError(
            f"{name}: pixels must be [N, height, width] or [N, height, width, channels 1|3|4], got shape "
            f"{list(array.shape)}. Send a batch of images, channels last"
        )
    return ParsedInput("pixels", sources=[PixelArray(image, f"{name}[{i}]") for i, image in enumerate(array)])


def _tensor(name: str, array: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """The preprocessed tensor as float32 ``[N, *shape]`` (a single image or flattened rows are reshaped)."""
    if array.dtype.kind not in "fiu" or array.dtype == np.bool_:
        raise DataError(
            f"{name}: must be the preprocessed float32 tensor [N, {', '.join(map(str, shape))}], got "
            f"dtype {array.dtype}"
        )
    x = array.astype(np.float32, copy=False)
    if x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
        x = x.reshape((-1, *shape))
    elif x.shape == shape:
        x = x[None]
    if x.ndim != len(shape) + 1 or tuple(x.shape[1:]) != shape:
        raise DataError(
            f"{name}: the preprocessed tensor must be float32 [N, {', '.join(map(str, shape))}], got shape "
            f"{list(array.shape)}. Send image files as 'files' or uint8 pixels as 'pixels' to have them "
            "preprocessed here"
        )
    return np.ascontiguousarray(x)
