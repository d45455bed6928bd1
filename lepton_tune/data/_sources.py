"""Where the images come from: one reader per dataset kind, each returning images in ``[0, 1]``.

Every reader returns a :class:`Raw`: ``x`` float ``[N, C, S, S]`` already resized to the spec's
``image_size`` and adapted to its ``channels``, ``y`` int64 ``[N]``, the class names, and whether
images given later as files are inverted (``"auto"`` for digits: white ink on black, like the set).
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from lepton_tune.config import DatasetSpec
from lepton_tune.data._images import (
    IMAGE_EXTENSIONS,
    adapt_channels,
    decode_image,
    fit_image,
    resize,
)
from lepton_tune.exceptions import DataError

__all__ = ["Raw", "read_source"]


@dataclass
class Raw:
    x: torch.Tensor
    y: torch.Tensor
    classes: list[str]
    invert: bool | str = False


def read_source(spec: DatasetSpec) -> Raw:
    """Read the images ``spec`` names (no split, no normalisation yet)."""
    readers = {"digits": _digits, "synthetic": _synthetic, "imagefolder": _imagefolder, "cifar10": _cifar10}
    return readers[spec.kind](spec)


def _digits(spec: DatasetSpec) -> Raw:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    x = adapt_channels(resize(x, spec.image_size), spec.channels).clamp_(0.0, 1.0)
    y = torch.from_numpy(bunch.target.astype(np.int64))
    return Raw(x.contiguous(), y, [str(c) for c in range(10)], invert="auto")


def _synthetic(spec: DatasetSpec) -> Raw:
    gen = torch.Generator().manual_seed(spec.split_seed)
    x = torch.rand((spec.samples, spec.channels, spec.image_size, spec.image_size), generator=gen)
    y = torch.arange(spec.samples, dtype=torch.int64) % spec.num_classes
    y = y[torch.randperm(spec.samples, generator=gen)]
    return Raw(x, y, [f"class_{i}" for i in range(spec.num_classes)])


def _existing_dir(spec: DatasetSpec) -> Path:
    root = Path(str(spec.path)).expanduser()
    if not root.is_dir():
        raise DataError(
            f"dataset.path: {spec.kind} needs an existing directory, got '{root}' (does not exist or is "
            "not a directory). Check the path"
        )
    return root


def _class_order(spec: DatasetSpec, root: Path, found: list[Path]) -> list[Path]:
    """The class directories in the order of ``spec.classes`` (one name per line), else sorted by name."""
    if not spec.classes:
        return found
    path = Path(spec.classes).expanduser()
    try:
        names = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(
            f"dataset.classes: cannot read '{path}' ({exc}). Give a text file with one class name per line"
        ) from None
    by_name = {p.name: p for p in found}
    problems = []
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        problems.append(f"{path}: class(es) {twice} listed twice; list each class once")
    missing = [n for n in names if n not in by_name]
    if missing:
        problems.append(f"{path}: class(es) {missing[:5]} have no folder in {root} (folders: {sorted(by_name)[:10]})")
    extra = sorted(set(by_name) - set(names))
    if extra:
        problems.append(f"{root}: folder(s) {extra[:5]} are not listed in {path}; list them or move them out")
    if problems:
        raise DataError("\n".join(problems))
    return [by_name[n] for n in names]


def _imagefolder(spec: DatasetSpec) -> Raw:
    """torchvision's ImageFolder layout: ``root/<class>/<image>``, classes sorted by name (or as ``spec.classes`` lists)."""
    root = _existing_dir(spec)
    class_dirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(class_dirs) < 2:
        raise DataError(
            f"{root}: imagefolder needs one sub-directory per class (at least 2), found "
            f"{len(class_dirs)}. Lay it out as {root}/<class>/<image>.png"
        )
    class_dirs = _class_order(spec, root, class_dirs)
    settings = {"image_size": spec.image_size, **spec.preprocessing_steps()}
    images: list[torch.Tensor] = []
    labels: list[int] = []
    for label, class_dir in enumerate(class_dirs):
        files = sorted(p for p in class_dir.rglob("*") if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise DataError(
                f"{class_dir}: class '{class_dir.name}' is empty (no {', '.join(IMAGE_EXTENSIONS)} file). "
                "Add images or remove the directory"
            )
        for path in files:
            images.append(fit_image(decode_image(path, spec.channels).unsqueeze(0), settings))
            labels.append(label)
    x = torch.cat(images).clamp_(0.0, 1.0)
    return Raw(x, torch.tensor(labels, dtype=torch.int64), [p.name for p in class_dirs])


class _SafeUnpickler(pickle.Unpickler):
    """Unpickle CIFAR batches, allowing only the numpy globals that format needs (no code runs)."""

    _ALLOWED: ClassVar[set[tuple[str, str]]] = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module: str, name: str):  # type: ignore[no-untyped-def]
        if (module, name) in self._ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global '{module}.{name}' is not allowed in a CIFAR-10 batch")


def _load_batch(path: Path) -> dict:  # type: ignore[type-arg]
    try:
        with path.open("rb") as fh:
            obj = _SafeUnpickler(fh, encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, OSError, ValueError, TypeError, AttributeError) as exc:
        raise DataError(
            f"{path}: not a readable CIFAR-10 python batch ({type(exc).__name__}: {exc}). Replace the file"
        ) from None
    if not isinstance(obj, dict):
        raise DataError(f"{path}: a CIFAR-10 batch must be a dict, got {type(obj).__name__}. Replace the file")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def _cifar10(spec: DatasetSpec) -> Raw:
    """The CIFAR-10 python format: ``data_batch_1..5``, ``test_batch``, ``batches.meta``.

    ``path`` may be the ``cifar-10-batches-py`` directory or its parent. All batches present are
    pooled and re-split with the spec's fractions and ``split_seed`` (like every other kind).
    """
    root = _existing_dir(spec)
    if (root / "cifar-10-batches-py").is_dir():
        root = root / "cifar-10-batches-py"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batch_files = [root / n for n in names if (root / n).is_file()]
    if not batch_files:
        raise DataError(
            f"{root}: no CIFAR-10 batch found (expected data_batch_1..5 and test_batch). Point dataset.path "
            "at the extracted cifar-10-batches-py directory"
        )
    xs, ys = [], []
    for path in batch_files:
        batch = _load_batch(path)
        data, labels = batch.get("data"), batch.get("labels")
        if data is None or labels is None:
            raise DataError(
                f"{path}: CIFAR-10 batch lacks 'data' or 'labels' (keys: {sorted(batch)}). Replace the file"
            )
        data = np.asarray(data, dtype=np.uint8)
        if data.ndim != 2 or data.shape[1] != 3072 or data.shape[0] != len(labels):
            raise DataError(
                f"{path}: 'data' must be uint8 [N, 3072] with N labels, got shape {data.shape} and "
                f"{len(labels)} labels. Replace the file"
            )
        xs.append(torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()))
        ys.append(torch.tensor(list(labels), dtype=torch.int64))
    classes = [str(i) for i in range(10)]
    meta_path = root / "batches.meta"
    if meta_path.is_file():
        names_raw = _load_batch(meta_path).get("label_names")
        if names_raw:
            classes = [n.decode() if isinstance(n, bytes) else str(n) for n in names_raw]
    x = adapt_channels(resize(torch.cat(xs).float().div_(255.0), spec.image_size), spec.channels)
    y = torch.cat(ys)
    if int(y.max()) >= len(classes) or int(y.min()) < 0:
        raise DataError(f"{root}: labels must lie in [0, {len(classes) - 1}], got {int(y.min())}..{int(y.max())}")
    return Raw(x.clamp_(0.0, 1.0).contiguous(), y, classes)
