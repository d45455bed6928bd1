"""`Dataset` (normalised train/val/test tensors) and `load_dataset` / `load_image_files`."""

from __future__ import annotations

import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lepton_tune.config import DatasetSpec
from lepton_tune.data._images import expand_image_paths, normalise, preprocess_files
from lepton_tune.data._sources import read_source
from lepton_tune.exceptions import DataError

__all__ = ["PREPROCESSING_VERSION", "Dataset", "load_dataset", "load_image_files"]

#: Bumped whenever preprocessing changes, so fingerprints (and the model cache) change with it.
PREPROCESSING_VERSION = 1

Split = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Dataset:
    """Normalised tensors for one dataset spec.

    ``train`` / ``val`` / ``test`` are ``(x, y)``: ``x`` float32 ``[N, C, H, W]`` normalised with
    ``mean`` / ``std`` (per channel, from the training split unless the spec gives them), ``y``
    int64 ``[N]``. ``fingerprint`` is a SHA-256 over every tensor, the class names and the
    preprocessing settings: equal fingerprints mean equal data. ``split_indices`` maps each split
    to the positions of its images in the source (``load_digits`` order for digits).

    Example:
        >>> ds = load_dataset(DatasetSpec(kind="synthetic", samples=100, image_size=8))
        >>> ds.image_shape, len(ds.classes)
        ((3, 8, 8), 10)
    """

    kind: str
    train: Split = field(repr=False)
    val: Split = field(repr=False)
    test: Split = field(repr=False)
    classes: list[str]
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    fingerprint: str
    invert: bool | str = False
    split_indices: dict[str, np.ndarray] = field(default_factory=dict, repr=False)
    steps: dict[str, Any] = field(default_factory=dict)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    def preprocessing(self) -> dict[str, Any]:
        """A JSON-able dict that :func:`load_image_files` accepts as ``like`` (a bundle stores it)."""
        return {
            "version": PREPROCESSING_VERSION,
            "kind": self.kind,
            "image_size": self.image_shape[1],
            "channels": self.image_shape[0],
            "mean": list(self.mean),
            "std": list(self.std),
            "invert": self.invert,
            "classes": list(self.classes),
            **self.steps,
        }


def _split(y: np.ndarray, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Stratified train/val/test positions from ``split_seed`` (unstratified if a class is too small)."""
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    val_of_rest = spec.val_fraction / (1.0 - spec.test_fraction)
    try:
        rest, test = train_test_split(idx, test_size=spec.test_fraction, random_state=spec.split_seed, stratify=y)
        train, val = train_test_split(rest, test_size=val_of_rest, random_state=spec.split_seed, stratify=y[rest])
    except ValueError:
        warnings.warn(
            f"dataset: some class has too few images for a stratified split ({np.bincount(y).min()} "
            "images); splitting without stratification",
            stacklevel=3,
        )
        try:
            rest, test = train_test_split(idx, test_size=spec.test_fraction, random_state=spec.split_seed)
            train, val = train_test_split(rest, test_size=val_of_rest, random_state=spec.split_seed)
        except ValueError:
            train = val = test = idx[:0]
    if min(len(train), len(val), len(test)) == 0:
        raise DataError(f"dataset: {len(y)} images are too few to split into train/val/test. Add images")
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _eval_split(y: np.ndarray, spec: DatasetSpec) -> dict[str, np.ndarray]:
    """Evaluation-only: a seeded calibration subset and a disjoint accuracy subset (stratified when possible).

    ``train`` and ``val`` are both the calibration subset (int8 calibration, conversion checks);
    ``test`` is the accuracy subset; nothing is trained.
    """
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    calib = spec.calibration_images
    accuracy = spec.accuracy_images if spec.accuracy_images is not None else len(y) - calib
    if calib + accuracy > len(y) or accuracy < 1:
        raise DataError(
            f"dataset: {len(y)} images in {spec.path} are too few for calibration_images {calib} + "
            f"accuracy_images {spec.accuracy_images}. Lower calibration_images or accuracy_images"
        )
    rest = len(y) - calib - accuracy
    try:
        cal, other = train_test_split(idx, train_size=calib, random_state=spec.split_seed, stratify=y)
        acc = (
            other
            if rest == 0
            else train_test_split(other, train_size=accuracy, random_state=spec.split_seed, stratify=y[other])[0]
        )
    except ValueError:  # a class too small to stratify: a plain seeded split
        order = np.random.default_rng(spec.split_seed).permutation(idx)
        cal, acc = order[:calib], order[calib : calib + accuracy]
    return {"train": np.sort(cal), "val": np.sort(cal), "test": np.sort(acc)}


def _stats(spec: DatasetSpec, train_x: torch.Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    channels = train_x.shape[1]
    if (spec.kind == "synthetic" or spec.eval_only) and spec.mean is None and spec.std is None:
        # a model served as given was trained with its own normalisation: none is invented (declare mean/std)
        return (0.0,) * channels, (1.0,) * channels
    given = {}
    for name in ("mean", "std"):
        value = getattr(spec, name)
        if value is not None:
            if len(value) not in (1, channels):
                raise DataError(
                    f"dataset.{name}: must hold 1 or {channels} values (one per channel), got "
                    f"{list(value)}. Give {channels} values or leave it out"
                )
            if name == "std" and min(value) <= 0:
                raise DataError(f"dataset.std: every value must be > 0, got {list(value)}")
            given[name] = tuple(float(v) for v in value) * (channels if len(value) == 1 else 1)
    if spec.eval_only:
        return given.get("mean") or (0.0,) * channels, given.get("std") or (1.0,) * channels
    mean = given.get("mean") or tuple(float(v) for v in train_x.mean(dim=(0, 2, 3)))
    std = given.get("std") or tuple(max(float(v), 1e-6) for v in train_x.std(dim=(0, 2, 3)))
    return mean, std


def _fingerprint(parts: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    digest = hashlib.sha256(json.dumps(meta, sort_keys=True).encode())
    for name in sorted(parts):
        tensor = parts[name].contiguous()
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.numpy().tobytes())
    return digest.hexdigest()


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Read, split and normalise the dataset ``spec`` describes.

    ``digits`` is scikit-learn's handwritten digits (1797 images, classes "0".."9"), upscaled from
    8x8 to ``image_size``; ``imagefolder`` reads ``path/<class>/<image>``; ``cifar10`` reads the
    CIFAR-10 python batches under ``path``; ``synthetic`` draws ``samples`` uniform random images
    with ``num_classes`` balanced random labels (``num_classes`` only applies to synthetic).
    The split is stratified and fixed by ``split_seed``.

    Example:
        >>> ds = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=1))
        >>> ds.train[0].shape[1:], ds.classes[:3]
        (torch.Size([1, 16, 16]), ['0', '1', '2'])

    Raises:
        DataError: the directory does not exist, a class is empty, or a file is unreadable.
    """
    raw = read_source(spec)
    indices = _eval_split(raw.y.numpy(), spec) if spec.eval_only else _split(raw.y.numpy(), spec)
    pick = {name: torch.from_numpy(idx) for name, idx in indices.items()}
    mean, std = _stats(spec, raw.x[pick["train"]])
    splits = {name: (normalise(raw.x[i], mean, std), raw.y[i].clone()) for name, i in pick.items()}
    meta = {
        "version": PREPROCESSING_VERSION,
        "kind": spec.kind,
        "image_size": spec.image_size,
        "channels": spec.channels,
        "mean": list(mean),
        "std": list(std),
        "classes": raw.classes,
        "invert": raw.invert,
        **spec.preprocessing_steps(),
        **({"eval_only": [spec.calibration_images, spec.accuracy_images]} if spec.eval_only else {}),
    }
    tensors = {f"{name}_{part}": t for name, pair in splits.items() for part, t in zip("xy", pair)}
    return Dataset(
        kind=spec.kind,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        classes=list(raw.classes),
        image_shape=(spec.channels, spec.image_size, spec.image_size),
        mean=mean,
        std=std,
        fingerprint=_fingerprint(tensors, meta),
        invert=raw.invert,
        split_indices=indices,
        steps=spec.preprocessing_steps(),
    )


_SETTINGS = ("image_size", "channels", "mean", "std")


def load_image_files(paths: Sequence[str | Path], like: Dataset | dict[str, Any]) -> torch.Tensor:
    """Preprocess image files exactly like the dataset ``like`` (or its ``preprocessing()`` dict).

    PNG/JPEG/... files, greyscale or RGB, any size; directories are expanded recursively in sorted
    order (:func:`expand_image_paths` gives that order). For digits, a file with a light background
    (mean brightness > 0.5) is inverted so that the ink is bright, as in the dataset.

    Example:
        >>> ds = load_dataset(DatasetSpec(kind="synthetic", samples=100, image_size=8))
        >>> load_image_files([], ds.preprocessing()).shape
        torch.Size([0, 3, 8, 8])

    Raises:
        DataError: a path does not exist, a file is not an image, or ``like`` lacks a setting.
    """
    settings = like.preprocessing() if isinstance(like, Dataset) else dict(like)
    missing = [k for k in _SETTINGS if k not in settings]
    if missing:
        raise DataError(
            f"load_image_files: like is missing {missing}; pass a Dataset or the dict from Dataset.preprocessing()"
        )
    return preprocess_files(expand_image_paths(paths), settings)
