"""Small datasets written in the exact on-disk formats the loaders read."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


def write_imagefolder(root: Path, classes: dict[str, int], *, size: int = 12, seed: int = 0) -> Path:
    """``root/<class>/<i>.png|jpg``: class k is a bright square in a class-specific corner."""
    rng = np.random.default_rng(seed)
    for k, (name, count) in enumerate(classes.items()):
        folder = root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            img = rng.integers(0, 40, size=(size, size, 3), dtype=np.uint8)
            r, c = divmod(k, 2)
            img[r * size // 2 : (r + 1) * size // 2, c * size // 2 : (c + 1) * size // 2] = 230
            ext = "jpg" if i % 3 == 0 else "png"
            Image.fromarray(img).save(folder / f"{i:03d}.{ext}")
    return root


def write_cifar10(root: Path, per_batch: int = 30, *, batches: int = 2, seed: int = 0) -> Path:
    """The CIFAR-10 python format: pickled dicts with bytes keys, uint8 ``data [N, 3072]``."""
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True, exist_ok=True)
    names = [f"data_batch_{i}" for i in range(1, batches)] + ["test_batch"]
    for name in names:
        labels = [i % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        with (root / name).open("wb") as fh:
            pickle.dump(
                {
                    b"batch_label": name.encode(),
                    b"labels": labels,
                    b"data": data,
                    b"filenames": [f"{i}.png".encode() for i in range(per_batch)],
                },
                fh,
            )
    meta = {
        b"label_names": [
            n.encode()
            for n in ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        ],
        b"num_vis": 3072,
    }
    with (root / "batches.meta").open("wb") as fh:
        pickle.dump(meta, fh)
    return root


@pytest.fixture
def imagefolder(tmp_path: Path) -> Path:
    return write_imagefolder(tmp_path / "shapes", {"a": 10, "b": 10, "c": 10})


@pytest.fixture
def cifar_dir(tmp_path: Path) -> Path:
    return write_cifar10(tmp_path / "cifar-10-batches-py")
