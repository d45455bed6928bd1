from __future__ import annotations

import pytest
import torch

from lepton_tune.config import DatasetSpec
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import DataError


def test_synthetic_shape_classes_and_determinism() -> None:
    spec = DatasetSpec(kind="synthetic", samples=100, num_classes=4, image_size=12, channels=1)
    ds = load_dataset(spec)
    assert ds.image_shape == (1, 12, 12) and len(ds.classes) == 4
    assert sum(len(s[1]) for s in (ds.train, ds.val, ds.test)) == 100
    assert set(ds.train[1].tolist()) == {0, 1, 2, 3}
    assert ds.mean == (0.0,) and ds.std == (1.0,)
    again = load_dataset(spec)
    assert again.fingerprint == ds.fingerprint and torch.equal(again.train[0], ds.train[0])
    assert load_dataset(spec.model_copy(update={"split_seed": 3})).fingerprint != ds.fingerprint


def test_too_few_images_to_split() -> None:
    import numpy as np

    from lepton_tune.data._dataset import _split

    spec = DatasetSpec(kind="synthetic", val_fraction=0.1, test_fraction=0.1)
    with (
        pytest.raises(DataError, match="2 images are too few to split into train/val/test"),
        pytest.warns(UserWarning, match="too few images for a stratified split"),
    ):
        _split(np.array([0, 1]), spec)
