"""A fresh MLflow SQLite store per test, copied from one schema built once per session.

Creating the MLflow schema runs its migrations (about 8 s on this machine); a copy takes milliseconds.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def template_store(factory: pytest.TempPathFactory) -> Path:
    """The session's empty MLflow database (schema only), built on first use."""
    path = factory.getbasetemp() / "mlflow-template" / "mlflow.db"
    if not path.is_file():
        from mlflow import MlflowClient

        path.parent.mkdir(parents=True, exist_ok=True)
        building = path.with_name("building.db")
        MlflowClient(tracking_uri=f"sqlite:///{building}").search_experiments()
        os.replace(building, path)
    return path


def fresh_store(factory: pytest.TempPathFactory, run_dir: Path) -> str:
    """Copy the template to ``run_dir/mlflow.db``; return its tracking URI."""
    run_dir.mkdir(parents=True, exist_ok=True)
    shutil.copy(template_store(factory), run_dir / "mlflow.db")
    return f"sqlite:///{(run_dir / 'mlflow.db').resolve()}"
