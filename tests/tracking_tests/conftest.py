from __future__ import annotations

import pytest

from tests.tracking_tests._mlflow_store import fresh_store


@pytest.fixture
def mlflow_uri(tmp_path_factory: pytest.TempPathFactory, tmp_path) -> str:  # type: ignore[no-untyped-def]
    """A real, empty MLflow SQLite store in ``tmp_path/run/mlflow.db``."""
    return fresh_store(tmp_path_factory, tmp_path / "run")
