"""Fixtures of the bundle tests: the shared tiny study and a private copy of its bundle."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.bundle_tests._study import TinyStudy, tiny_study


@pytest.fixture(scope="session")
def study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    return tiny_study(tmp_path_factory)


@pytest.fixture
def bundle_copy(study: TinyStudy, tmp_path: Path) -> Path:
    """A copy of the exported bundle that a test may damage."""
    return Path(shutil.copytree(study.bundle, tmp_path / "bundle"))
