from __future__ import annotations

import numpy as np
import pytest
import torch

from lepton_tune.config import DatasetSpec
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import DataError


@pytest.fixture(scope="module")
def digits():
    return load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3))


def test_shapes_classes_and_normalisation(digits) -> None:
    x, y = digits.train
    assert digits.image_shape == (3, 16, 16)
    assert x.shape[1:] == (3, 16, 16) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert digits.classes == [str(i) for i in range(10)]
    assert sum(len(s[1]) for s in (digits.train, digits.val, digits.test)) == 1797
    assert abs(float(x.mean())) < 1e-3 and abs(float(x.std()) - 1.0) < 1e-2
    assert torch.equal(x[:, 0], x[:, 2])  # grey replicated to 3 channels


def test_split_is_disjoint_stratified_and_sized(digits) -> None:
    idx = digits.split_indices
    every = np.concatenate([idx["train"], idx["val"], idx["test"]])
    assert len(np.unique(every)) == 1797
    assert abs(len(idx["test"]) / 1797 - 0.3) < 0.01 and abs(len(idx["val"]) / 1797 - 0.15) < 0.01
    shares = np.bincount(digits.test[1].numpy(), minlength=10) / len(digits.test[1])
    assert shares.min() > 0.08 and shares.max() < 0.12


def test_same_spec_same_fingerprint_other_settings_differ(digits) -> None:
    again = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3))
    assert again.fingerprint == digits.fingerprint
    assert torch.equal(again.test[0], digits.test[0])
    other_seed = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3, split_seed=1))
    grey = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=1))
    assert len({digits.fingerprint, other_seed.fingerprint, grey.fingerprint}) == 3
    assert not np.array_equal(other_seed.split_indices["test"], digits.split_indices["test"])


def test_given_mean_std_are_used() -> None:
    ds = load_dataset(DatasetSpec(kind="digits", image_size=8, channels=1, mean=(0.5,), std=(0.25,)))
    assert ds.mean == (0.5,) and ds.std == (0.25,)
    assert float(ds.train[0].min()) == pytest.approx(-2.0)


def test_mean_with_wrong_length_is_refused() -> None:
    with pytest.raises(DataError, match=r"dataset\.mean: must hold 1 or 3 values .* got \[0\.1, 0\.2\]"):
        load_dataset(DatasetSpec(kind="digits", image_size=8, mean=(0.1, 0.2)))


def test_non_positive_std_is_refused() -> None:
    with pytest.raises(DataError, match=r"dataset\.std: every value must be > 0, got \[0\.0\]"):
        load_dataset(DatasetSpec(kind="digits", image_size=8, std=(0.0,)))


def test_preprocessing_dict_is_json_able(digits) -> None:
    import json

    pre = json.loads(json.dumps(digits.preprocessing()))
    assert pre["kind"] == "digits" and pre["image_size"] == 16 and pre["channels"] == 3
    assert pre["invert"] == "auto" and pre["classes"][9] == "9" and len(pre["mean"]) == 3
