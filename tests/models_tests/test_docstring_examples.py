"""The examples in the data and models docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lepton_tune.data._dataset",
    "lepton_tune.data._images",
    "lepton_tune.models._cache",
    "lepton_tune.models._profile",
    "lepton_tune.models._precision",
    "lepton_tune.models._registry",
    "lepton_tune.models._train",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
