from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from lepton_tune.config import DatasetSpec
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import DataError


def test_cifar10_pools_batches_and_reads_label_names(cifar_dir: Path) -> None:
    ds = load_dataset(DatasetSpec(kind="cifar10", path=str(cifar_dir), image_size=16, val_fraction=0.2))
    assert ds.classes[0] == "airplane" and len(ds.classes) == 10
    assert ds.image_shape == (3, 16, 16)
    assert sum(len(s[1]) for s in (ds.train, ds.val, ds.test)) == 60
    parent = load_dataset(DatasetSpec(kind="cifar10", path=str(cifar_dir.parent), image_size=16, val_fraction=0.2))
    assert parent.fingerprint == ds.fingerprint  # the parent of cifar-10-batches-py works too


def test_directory_without_batches(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=r"no CIFAR-10 batch found \(expected data_batch_1\.\.5 and test_batch\)"):
        load_dataset(DatasetSpec(kind="cifar10", path=str(tmp_path)))


def test_pickle_with_foreign_globals_is_refused(cifar_dir: Path) -> None:
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    with (cifar_dir / "test_batch").open("wb") as fh:
        pickle.dump({b"data": Evil(), b"labels": []}, fh)
    with pytest.raises(
        DataError, match=r"test_batch: not a readable CIFAR-10 python batch .*builtins\.print.* not allowed"
    ):
        load_dataset(DatasetSpec(kind="cifar10", path=str(cifar_dir)))


def test_truncated_batch_is_named(cifar_dir: Path) -> None:
    blob = (cifar_dir / "data_batch_1").read_bytes()
    (cifar_dir / "data_batch_1").write_bytes(blob[:100])
    with pytest.raises(DataError, match=r"data_batch_1: not a readable CIFAR-10 python batch"):
        load_dataset(DatasetSpec(kind="cifar10", path=str(cifar_dir)))


def test_wrong_data_shape_is_named(cifar_dir: Path) -> None:
    import numpy as np

    with (cifar_dir / "test_batch").open("wb") as fh:
        pickle.dump({b"data": np.zeros((4, 100), dtype=np.uint8), b"labels": [0, 1, 2, 3]}, fh)
    with pytest.raises(
        DataError, match=r"test_batch: 'data' must be uint8 \[N, 3072\] with N labels, got shape \(4, 100\)"
    ):
        load_dataset(DatasetSpec(kind="cifar10", path=str(cifar_dir)))
