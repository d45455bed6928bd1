"""A small digits dataset and a small_cnn trained on it once per test session."""

from __future__ import annotations

import pytest

from lepton_tune.config import DatasetSpec, TrainRecipe
from lepton_tune.data import Dataset, load_dataset

TINY = TrainRecipe(epochs=2, batch_size=64, lr=3e-3, patience=0, seed=0)


@pytest.fixture(scope="session")
def digits16() -> Dataset:
    return load_dataset(DatasetSpec(kind="digits", image_size=16, channels=1))


@pytest.fixture(scope="session")
def tiny_synthetic() -> Dataset:
    return load_dataset(DatasetSpec(kind="synthetic", samples=96, num_classes=3, image_size=8, channels=1))


@pytest.fixture(scope="session")
def trained(digits16):
    from lepton_tune.models import train_model

    return train_model("small_cnn", TINY, digits16)
