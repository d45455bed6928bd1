"""Decoding and preprocessing shared by datasets and by images given later as files.

One pipeline, used everywhere: decode -> float in [0, 1], ``[C, h, w]`` -> optional inversion ->
resize to ``image_size`` x ``image_size`` (bilinear, antialiased) -> channels adapted (grey
replicated to 3, RGB averaged to 1) -> ``(x - mean) / std`` per channel.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from lepton_tune.exceptions import DataError

__all__ = ["IMAGE_EXTENSIONS", "adapt_channels", "decode_image", "expand_image_paths", "normalise", "resize"]

#: File name endings read as images (lower case).
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".pgm", ".gif", ".webp", ".tif", ".tiff")


def decode_image(path: str | Path, channels: int) -> torch.Tensor:
    """Read one PNG/JPEG/... file as a float tensor ``[channels, h, w]`` in ``[0, 1]``.

    Raises:
        DataError: the file is missing, not an image, or truncated (the message names the file).
    """
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    try:
        with Image.open(path) as img:
            img.load()
            array = np.asarray(img.convert("L" if channels == 1 else "RGB"), dtype=np.uint8)
    except FileNotFoundError:
        raise DataError(f"{path}: image file does not exist. Check the path") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(
            f"{path}: cannot be read as an image ({type(exc).__name__}: {exc}). Replace or remove the file"
        ) from None
    tensor = torch.from_numpy(array.copy()).float().div_(255.0)
    return tensor.unsqueeze(0) if channels == 1 else tensor.permute(2, 0, 1).contiguous()


def resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a batch ``[N, C, h, w]`` to ``[N, C, size, size]`` (bilinear, antialiased when shrinking)."""
    if x.shape[-2:] == (size, size):
        return x
    shrinking = x.shape[-1] > size or x.shape[-2] > size
    return F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrinking)


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


def preprocess_files(paths: list[Path], settings: dict[str, Any]) -> torch.Tensor:
    """Decode, invert (if the settings say so), resize, adapt channels and normalise ``paths``."""
    channels = int(settings["channels"])
    size = int(settings["image_size"])
    invert = settings.get("invert", False)
    decoded = []
    for path in paths:
        img = decode_image(path, 1 if channels == 1 or invert == "auto" else 3)
        if invert is True or (invert == "auto" and float(img.mean()) > 0.5):
            img = 1.0 - img
        img = adapt_channels(resize(img.unsqueeze(0), size), channels)
        decoded.append(img)
    if not decoded:
        return torch.empty((0, channels, size, size), dtype=torch.float32)
    return normalise(torch.cat(decoded), settings["mean"], settings["std"])
