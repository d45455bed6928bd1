"""The examples in the bundle docstrings run and print what they say."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = [
    "lepton_tune.bundle._export",
    "lepton_tune.bundle._load",
    "lepton_tune.bundle._manifest",
    "lepton_tune.bundle._replace",
    "lepton_tune.bundle._verify",
]


@pytest.mark.parametrize("name", MODULES)
def test_examples(name: str) -> None:
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
