from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn.datasets import load_digits

from lepton_tune.config import DatasetSpec
from lepton_tune.data import expand_image_paths, load_dataset, load_image_files
from lepton_tune.exceptions import DataError


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3))


def _save_digit(path: Path, index: int, *, scale: int = 1, invert: bool = False, rgb: bool = False) -> None:
    img = (load_digits().images[index] / 16.0 * 255.0).round().astype(np.uint8)
    if invert:
        img = 255 - img
    pil = Image.fromarray(img)
    if scale > 1:
        pil = pil.resize((8 * scale, 8 * scale), Image.NEAREST)
    (pil.convert("RGB") if rgb else pil).save(path)


def test_digit_png_matches_the_dataset_row(tmp_path: Path, digits) -> None:
    row = int(digits.split_indices["test"][0])
    _save_digit(tmp_path / "d.png", row)
    x = load_image_files([tmp_path / "d.png"], json.loads(json.dumps(digits.preprocessing())))
    assert x.shape == (1, 3, 16, 16)
    assert torch.allclose(x[0], digits.test[0][0], atol=0.02)  # only 8-bit rounding differs


def test_dark_ink_on_white_rgb_is_inverted_for_digits(tmp_path: Path, digits) -> None:
    row = int(digits.split_indices["test"][0])
    _save_digit(tmp_path / "plain.png", row)
    _save_digit(tmp_path / "paper.png", row, invert=True, rgb=True)
    x = load_image_files([tmp_path / "plain.png", tmp_path / "paper.png"], digits)
    assert torch.allclose(x[0], x[1], atol=0.1)


def test_any_size_is_resized(tmp_path: Path, digits) -> None:
    _save_digit(tmp_path / "big.png", 5, scale=12)
    assert load_image_files([tmp_path / "big.png"], digits).shape == (1, 3, 16, 16)


def test_directories_expand_sorted(tmp_path: Path, digits) -> None:
    for name in ("b.png", "a.png", "c.txt"):
        (tmp_path / name).write_bytes(b"")
    assert [p.name for p in expand_image_paths([tmp_path])] == ["a.png", "b.png"]


def test_missing_path_and_empty_directory(tmp_path: Path, digits) -> None:
    with pytest.raises(DataError, match=r"nope\.png: no such file or directory"):
        load_image_files([tmp_path / "nope.png"], digits)
    with pytest.raises(DataError, match=r"directory holds no image file"):
        load_image_files([tmp_path], digits)


def test_unreadable_file_is_named(tmp_path: Path, digits) -> None:
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    with pytest.raises(DataError, match=r"bad\.png: cannot be read as an image"):
        load_image_files([tmp_path / "bad.png"], digits)


def test_like_without_settings_is_refused() -> None:
    with pytest.raises(DataError, match=r"like is missing \['mean', 'std'\]"):
        load_image_files([], {"image_size": 8, "channels": 1})
