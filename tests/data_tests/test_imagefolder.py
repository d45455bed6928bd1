from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lepton_tune.config import DatasetSpec
from lepton_tune.data import load_dataset, load_image_files
from lepton_tune.exceptions import DataError
from tests.data_tests.conftest import write_imagefolder


def test_imagefolder_reads_classes_and_files(imagefolder: Path) -> None:
    ds = load_dataset(
        DatasetSpec(
            kind="imagefolder", path=str(imagefolder), image_size=8, channels=3, val_fraction=0.2, test_fraction=0.3
        )
    )
    assert ds.classes == ["a", "b", "c"] and ds.image_shape == (3, 8, 8)
    assert sum(len(s[1]) for s in (ds.train, ds.val, ds.test)) == 30
    assert sorted(torch.cat([ds.train[1], ds.val[1], ds.test[1]]).tolist()) == [0] * 10 + [1] * 10 + [2] * 10


def test_files_given_later_match_the_dataset_rows(imagefolder: Path) -> None:
    ds = load_dataset(DatasetSpec(kind="imagefolder", path=str(imagefolder), image_size=8, channels=1))
    files = (
        sorted((imagefolder / "a").iterdir())
        + sorted((imagefolder / "b").iterdir())
        + sorted((imagefolder / "c").iterdir())
    )
    x = load_image_files(files, ds.preprocessing())
    test_rows = ds.split_indices["test"]
    assert torch.allclose(x[test_rows], ds.test[0], atol=1e-5)
    assert torch.equal(load_image_files([imagefolder], ds), x)  # a directory expands to the same sorted files


def test_image_size_change_changes_fingerprint(imagefolder: Path) -> None:
    a = load_dataset(DatasetSpec(kind="imagefolder", path=str(imagefolder), image_size=8))
    b = load_dataset(DatasetSpec(kind="imagefolder", path=str(imagefolder), image_size=10))
    assert a.fingerprint != b.fingerprint


def test_missing_directory_is_named(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"dataset\.path: imagefolder needs an existing directory, got '.*nowhere'"):
        load_dataset(DatasetSpec(kind="imagefolder", path=str(tmp_path / "nowhere")))


def test_empty_class_is_named(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "d", {"a": 3, "b": 3})
    (root / "empty").mkdir()
    with pytest.raises(DataError, match=r"empty: class 'empty' is empty"):
        load_dataset(DatasetSpec(kind="imagefolder", path=str(root)))


def test_single_class_is_refused(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "d", {"a": 3})
    with pytest.raises(DataError, match=r"imagefolder needs one sub-directory per class \(at least 2\), found 1"):
        load_dataset(DatasetSpec(kind="imagefolder", path=str(root)))


def test_corrupt_file_is_named(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "d", {"a": 3, "b": 3})
    good = (root / "b" / "001.png").read_bytes()
    (root / "b" / "001.png").write_bytes(good[: len(good) // 2])
    (root / "a" / "002.png").write_bytes(b"not an image at all")
    with pytest.raises(DataError, match=r"a/002\.png: cannot be read as an image"):
        load_dataset(DatasetSpec(kind="imagefolder", path=str(root)))
    (root / "a" / "002.png").write_bytes(good)
    with pytest.raises(DataError, match=r"b/001\.png: cannot be read as an image"):
        load_dataset(DatasetSpec(kind="imagefolder", path=str(root)))
