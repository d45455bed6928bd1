"""Decoding and preprocessing shared by datasets and by images given later as files.

One pipeline, used everywhere: decode -> float in [0, 1], ``[C, h, w]`` -> optional inversion ->
resize to ``image_size`` x ``image_size`` (bilinear, antialiased) -> channels adapted (grey
replicated to 3, RGB averaged to 1) -> ``(x - mean) / std`` per channel.

The torchvision way, when the settings say so (:func:`fit_image`): ``resize`` scales the shorter
side to that many pixels (aspect kept), ``center_crop`` then cuts the central ``image_size`` square,
and ``color: bgr`` swaps the decoded RGB channels, all before normalisation.
"""

from __future__ import annotations

import io
import stat
import warnings
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lepton_tune.exceptions import DataError

__all__ = [
    "CHUNK_FILES",
    "IMAGE_EXTENSIONS",
    "MAX_IMAGE_BYTES",
    "MAX_IMAGE_PIXELS",
    "EncodedImage",
    "ImageSource",
    "PixelArray",
    "adapt_channels",
    "decode_image",
    "expand_image_paths",
    "fit_image",
    "iter_preprocessed",
    "normalise",
    "resize",
]

#: File name endings read as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")
#: Limits of one image file (README "Security and limits"): a breach is a DataError, exit 2 in the CLI.
MAX_IMAGE_BYTES = 64 << 20
MAX_IMAGE_PIXELS = 40_000_000
#: Files decoded at a time by :func:`iter_preprocessed` (bounded memory for directories of any size).
CHUNK_FILES = 256


@dataclass(frozen=True)
class EncodedImage:
    """The bytes of an image file received in memory (e.g. base64 over HTTP); ``name`` stands in for a path in
    messages, so that a breach reads exactly like the same file given to ``lepton-tune predict``."""

    data: bytes
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class PixelArray:
    """Decoded ``uint8`` pixels ``[h, w]`` or ``[h, w, 1|3|4]`` (grey, RGB, RGBA), named for messages.

    They go through the same conversion as a PNG of the same pixels (alpha composited on white).
    """

    array: np.ndarray
    name: str

    def __str__(self) -> str:
        return self.name


#: What :func:`decode_image` reads: a file path, an encoded file in memory, or uint8 pixels.
ImageSource = str | Path | EncodedImage | PixelArray


def _regular_file(path: Path) -> int:
    """The size of ``path`` if it is a regular file within :data:`MAX_IMAGE_BYTES`; DataError otherwise."""
    try:
        info = path.stat()  # follows links; a FIFO or device is refused before it is opened (no blocking read)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist. Check the path") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot be read ({exc.strerror or exc}). Check the path and its permissions") from None
    if not stat.S_ISREG(info.st_mode):
        kind = (
            "a directory"
            if stat.S_ISDIR(info.st_mode)
            else "a FIFO"
            if stat.S_ISFIFO(info.st_mode)
            else "a device"
            if stat.S_ISCHR(info.st_mode) or stat.S_ISBLK(info.st_mode)
            else "a socket or other special file"
        )
        raise DataError(f"{path}: is {kind}, not a regular image file. Pass image files or directories of them")
    _check_size(path, info.st_size)
    return info.st_size


def _check_size(name: object, size: int) -> None:
    """One image file (on disk or received in memory) holds at most :data:`MAX_IMAGE_BYTES`."""
    if size > MAX_IMAGE_BYTES:
        raise DataError(
            f"{name}: {size / 2**20:.1f} MiB, over the {MAX_IMAGE_BYTES >> 20} MiB limit for one "
            "image file. Downscale or re-encode it"
        )


def _check_pixels(name: object, width: int, height: int) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise DataError(
            f"{name}: {width}x{height} pixels, over the limit of {MAX_IMAGE_PIXELS:,} pixels "
            "per image (a decompression bomb, or far larger than any model input). Downscale it"
        )


def _from_pixels(source: PixelArray, channels: int) -> torch.Tensor:
    """uint8 pixels as a PIL image, then the same conversion as a decoded file (so a PNG of them agrees)."""
    from PIL import Image

    array = source.array
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8:
        dtype = getattr(array, "dtype", type(array).__name__)
        raise DataError(f"{source}: pixels must be uint8 (0-255), got {dtype}. Send uint8 pixels, or the encoded file")
    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] in (3, 4))) or 0 in array.shape:
        raise DataError(
            f"{source}: pixels must be [height, width] or [height, width, channels 1|3|4], got shape "
            f"{list(source.array.shape)}. Send one image per row, channels last"
        )
    _check_pixels(source, array.shape[1], array.shape[0])
    mode = "L" if array.ndim == 2 else "RGB" if array.shape[2] == 3 else "RGBA"
    array = _to_array(Image.fromarray(np.ascontiguousarray(array), mode=mode), channels)
    return torch.from_numpy(np.ascontiguousarray(array)).permute(2, 0, 1).contiguous()


def _to_array(img: Any, channels: int) -> np.ndarray:
    """A decoded PIL image as float32 ``[h, w, channels]`` in [0, 1]: 16-bit scaled, palette expanded, alpha on white."""
    from PIL import Image

    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I", "F"):  # 16-bit (or 32-bit int / float) greyscale
        grey = np.asarray(img, dtype=np.float32)
        if img.mode != "F":
            grey = grey / (65535.0 if img.mode != "I" or grey.max(initial=0) > 255 else 255.0)
        grey = np.clip(grey, 0.0, 1.0)[..., None]
        return grey if channels == 1 else np.repeat(grey, 3, axis=2)
    if img.mode == "P" or img.mode in ("LA", "PA", "La", "RGBa") or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "RGBA":  # transparent pixels become white, as an image viewer shows them
        img = Image.alpha_composite(Image.new("RGBA", img.size, (255, 255, 255, 255)), img)
    array = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.float32) / 255.0
    return array[..., None] if channels == 1 else array


def decode_image(path: ImageSource, channels: int) -> torch.Tensor:
    """Read one PNG/JPEG/... file as a float tensor ``[channels, h, w]`` in ``[0, 1]``.

    The one place lepton-tune decodes an image, with its limits: a regular file (no FIFO or
    device) of at most :data:`MAX_IMAGE_BYTES`, at most :data:`MAX_IMAGE_PIXELS` pixels (checked
    from the header, before decoding), complete (a truncated file is refused). EXIF orientation is
    applied, 16-bit greyscale is scaled by 65535, palette images are expanded, and transparent
    pixels are composited on white. ``path`` may also be an :class:`EncodedImage` (the bytes of such
    a file, same limits) or :class:`PixelArray` (uint8 pixels, same pixel limit and conversion).

    Raises:
        DataError: the file is missing, not a regular file, too large, a decompression bomb, not
            an image, or truncated; pixels that are not uint8 ``[h, w(, c)]`` (the message names the
            file or input, the limit and the fix).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if isinstance(path, PixelArray):
        return _from_pixels(path, channels)
    source: Path | io.BytesIO
    if isinstance(path, EncodedImage):
        _check_size(path, len(path.data))
        source = io.BytesIO(path.data)
    else:
        path = Path(path)
        _regular_file(path)
        source = path
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(source) as opened:
                _check_pixels(path, *opened.size)
                opened.load()
                array = _to_array(ImageOps.exif_transpose(opened), channels)
    except DataError:
        raise
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist. Check the path") from None
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise DataError(
            f"{path}: declares more than {MAX_IMAGE_PIXELS:,} pixels (a decompression bomb). Downscale it"
        ) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError, MemoryError) as exc:
        raise DataError(
            f"{path}: cannot be read as an image ({type(exc).__name__}: {str(exc)[:200]}). Replace or remove the file"
        ) from None
    tensor = torch.from_numpy(np.ascontiguousarray(array))
    return tensor.permute(2, 0, 1).contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a batch ``[N, C, h, w]`` to ``[N, C, size, size]`` (bilinear, antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    shrinking = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


def resize_shorter(x: torch.Tensor, side: int) -> torch.Tensor:
    """Resize ``[N, C, h, w]`` so that its shorter side is ``side`` (aspect kept, like torchvision's Resize(int))."""
    h, w = x.shape[-2:]
    if min(h, w) == side:
        return x
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    shrinking = size[0] < h or size[1] < w
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrinking)


def center_crop(x: torch.Tensor, side: int) -> torch.Tensor:
    """The central ``side`` x ``side`` square of ``[N, C, h, w]`` (as torchvision's CenterCrop rounds)."""
    h, w = x.shape[-2:]
    if (h, w) == (side, side):
        return x
    if h < side or w < side:
        x = resize_shorter(x, side)
        h, w = x.shape[-2:]
    top, left = round((h - side) / 2.0), round((w - side) / 2.0)
    return x[..., top : top + side, left : left + side].contiguous()


def fit_image(x: torch.Tensor, settings: dict[str, Any]) -> torch.Tensor:
    """Bring decoded images ``[N, C, h, w]`` to ``image_size`` as the settings say (before normalisation).

    Without ``resize``/``center_crop`` the image is resized to the square (the digits/imagefolder
    default). With them, the torchvision way: shorter side to ``resize`` (default: the crop), then
    the central ``center_crop`` square. ``color: bgr`` reverses the channel order of RGB images.
    """
    size = int(settings["image_size"])
    crop = settings.get("center_crop")
    if settings.get("resize") is None and crop is None:
        x = resize(x, size)
    else:
        x = center_crop(resize_shorter(x, int(settings.get("resize") or crop or size)), int(crop or size))
    if settings.get("color") == "bgr" and x.shape[1] == 3:
        x = x.flip(1)
    return x


def adapt_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Replicate grey to RGB or average RGB to grey so that ``x`` has ``channels`` channels."""
    have = x.shape[1]
    if have == channels:
        return x
    if have == 1:
        return x.expand(-1, channels, -1, -1).contiguous()
    return x.mean(dim=1, keepdim=True)


def normalise(x: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Return ``(x - mean) / std`` with one value per channel."""
    m = torch.tensor(list(mean), dtype=torch.float32).view(1, -1, 1, 1)
    s = torch.tensor(list(std), dtype=torch.float32).view(1, -1, 1, 1)
    return ((x - m) / s).contiguous()


def expand_image_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Expand directories (recursively, sorted) into their image files; keep files as given.

    Example:
        >>> expand_image_paths([])
        []

    Raises:
        DataError: a path does not exist, or a directory holds no image file.
    """
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise DataError(
                    f"{path}: directory holds no image file (looked for {', '.join(IMAGE_EXTENSIONS)}). "
                    "Point at a directory with images"
                )
            out.extend(found)
        elif path.exists():
            out.append(path)
        else:
            raise DataError(f"{path}: no such file or directory. Check the path")
    return out


def preprocess_files(paths: Sequence[ImageSource], settings: dict[str, Any]) -> torch.Tensor:
    """Decode, invert (if the settings say so), resize, adapt channels and normalise ``paths``."""
    channels = int(settings["channels"])
    size = int(settings["image_size"])
    invert = settings.get("invert", False)
    decoded = []
    for path in paths:
        img = decode_image(path, 1 if channels == 1 or invert == "auto" else 3)
        if invert is True or (invert == "auto" and float(img.mean()) > 0.5):
            img = 1.0 - img
        img = adapt_channels(fit_image(img.unsqueeze(0), settings), channels)
        decoded.append(img)
    if not decoded:
        return torch.empty((0, channels, size, size), dtype=torch.float32)
    return normalise(torch.cat(decoded), settings["mean"], settings["std"])


def iter_preprocessed(
    paths: Sequence[ImageSource], settings: dict[str, Any], *, chunk: int = CHUNK_FILES
) -> Iterator[tuple[Sequence[ImageSource], torch.Tensor]]:
    """Yield ``(paths, images)`` for ``chunk`` files at a time: memory stays bounded for any number of files."""
    for start in range(0, len(paths), chunk):
        part = paths[start : start + chunk]
        yield part, preprocess_files(list(part), settings)
