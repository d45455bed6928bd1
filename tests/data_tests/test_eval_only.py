"""Evaluation-only image folders: seeded disjoint subsets, a class-order file, torchvision-style preprocessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from lepton_tune.config import DatasetSpec
from lepton_tune.data import load_dataset, load_image_files
from lepton_tune.exceptions import DataError
from tests.data_tests.conftest import write_imagefolder


def _spec(root: Path, **kw) -> DatasetSpec:
    return DatasetSpec(kind="imagefolder", path=str(root), eval_only=True, image_size=12, **kw)


def test_eval_only_draws_disjoint_seeded_subsets_of_the_asked_sizes(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "imgs", {"a": 20, "b": 20, "c": 20})
    ds = load_dataset(_spec(root, calibration_images=15, accuracy_images=30))
    cal, acc = ds.split_indices["train"], ds.split_indices["test"]
    assert len(cal) == 15 and len(acc) == 30 and not set(cal) & set(acc)
    assert np.array_equal(ds.split_indices["val"], cal)  # conversion checks use the calibration images too
    again = load_dataset(_spec(root, calibration_images=15, accuracy_images=30))
    assert np.array_equal(again.split_indices["test"], acc) and again.fingerprint == ds.fingerprint
    other = load_dataset(_spec(root, calibration_images=15, accuracy_images=30, split_seed=1))
    assert not np.array_equal(other.split_indices["test"], acc)
    assert ds.mean == (0.0, 0.0, 0.0) and ds.std == (1.0, 1.0, 1.0)  # no normalisation invented for a given model


def test_eval_only_default_accuracy_subset_is_every_other_image(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "imgs", {"a": 10, "b": 10})
    ds = load_dataset(_spec(root, calibration_images=4))
    assert len(ds.test[1]) == 16


def test_too_few_images_for_the_subsets_is_a_clear_error(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "imgs", {"a": 5, "b": 5})
    with pytest.raises(DataError, match=r"10 images .* too few for calibration_images 8 \+ accuracy_images 5"):
        load_dataset(_spec(root, calibration_images=8, accuracy_images=5))


def test_classes_file_sets_the_label_order_and_must_match_the_folders(tmp_path: Path) -> None:
    root = write_imagefolder(tmp_path / "imgs", {"a": 6, "b": 6, "c": 6})
    order = tmp_path / "classes.txt"
    order.write_text("c\na\nb\n")
    ds = load_dataset(_spec(root, classes=str(order), calibration_images=3))
    assert ds.classes == ["c", "a", "b"]
    order.write_text("c\na\nz\n")
    with pytest.raises(DataError, match=r"class\(es\) \['z'\] have no folder.*\n.*folder\(s\) \['b'\] are not listed"):
        load_dataset(_spec(root, classes=str(order), calibration_images=3))


def test_resize_center_crop_and_bgr_are_applied_the_same_to_folders_and_files(tmp_path: Path) -> None:
    root = tmp_path / "imgs"
    for name, color in (("red", (255, 0, 0)), ("blue", (0, 0, 255))):
        (root / name).mkdir(parents=True)
        img = np.zeros((40, 60, 3), dtype=np.uint8)
        img[:, 20:40] = color  # only the central third is coloured: the crop keeps it, a squash would not
        Image.fromarray(img).save(root / name / "0.png")
        Image.fromarray(img).save(root / name / "1.png")
    spec = DatasetSpec(
        kind="imagefolder", path=str(root), eval_only=True, resize=20, center_crop=10, color="bgr", calibration_images=2
    )
    ds = load_dataset(spec)
    pre = ds.preprocessing()
    assert (pre["resize"], pre["center_crop"], pre["color"], pre["image_size"]) == (20, 10, "bgr", 10)
    files = load_image_files([root / "blue" / "0.png", root / "red" / "0.png"], pre)
    assert files.shape == (2, 3, 10, 10)
    assert float(files[0, 0].mean()) > 0.9 and float(files[0, 2].mean()) < 0.1  # blue lands in channel 0 (BGR)
    assert float(files[1, 2].mean()) > 0.9  # a squash of the whole width would give about 0.33
    both = torch.cat([ds.train[0], ds.test[0]])
    assert any(torch.allclose(files[0], x, atol=1e-6) for x in both)


def test_center_crop_must_be_the_image_size_and_resize_at_least_it() -> None:
    with pytest.raises(ValueError, match="center_crop: .* must equal image_size"):
        DatasetSpec(kind="imagefolder", path="x", center_crop=20, image_size=32)
    with pytest.raises(ValueError, match="dataset.resize: .* must be >= the crop"):
        DatasetSpec(kind="imagefolder", path="x", center_crop=32, resize=16)
    with pytest.raises(ValueError, match="apply to kind 'imagefolder'"):
        DatasetSpec(kind="digits", eval_only=True)
