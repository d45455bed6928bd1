"""default_tracking_uri and ensure_tracking_store on real SQLite stores."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import pytest
from mlflow import MlflowClient

from lepton_tune.exceptions import StorageError
from lepton_tune.tracking import default_tracking_uri, ensure_tracking_store


def test_default_uri_is_absolute_sqlite_in_the_run_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_tracking_uri(Path("runs")) == f"sqlite:///{tmp_path / 'runs' / 'mlflow.db'}"


def test_creates_experiment_once_with_its_artifact_location(tmp_path: Path, mlflow_uri: str) -> None:
    first = ensure_tracking_store(mlflow_uri, "demo", tmp_path / "art")
    assert ensure_tracking_store(mlflow_uri, "demo", tmp_path / "elsewhere") == first
    experiment = MlflowClient(mlflow_uri).get_experiment(first)
    assert experiment.name == "demo" and experiment.artifact_location.endswith(str(tmp_path / "art"))


def test_restores_a_deleted_experiment(tmp_path: Path, mlflow_uri: str) -> None:
    client = MlflowClient(mlflow_uri)
    first = ensure_tracking_store(mlflow_uri, "demo", tmp_path / "art")
    client.delete_experiment(first)
    assert ensure_tracking_store(mlflow_uri, "demo", tmp_path / "art") == first
    assert client.get_experiment(first).lifecycle_stage == "active"


def _ensure(uri: str, location: str, queue: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    queue.put(ensure_tracking_store(uri, "together", location))


def test_processes_starting_together_get_one_experiment(tmp_path: Path, mlflow_uri: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    workers = [ctx.Process(target=_ensure, args=(mlflow_uri, str(tmp_path / "art"), queue)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
    ids = [queue.get(timeout=5) for _ in workers]
    assert len(set(ids)) == 1 and all(w.exitcode == 0 for w in workers)
    assert [e.name for e in MlflowClient(mlflow_uri).search_experiments()].count("together") == 1


def test_unwritable_location_is_a_storage_error() -> None:
    with pytest.raises(StorageError, match=r"cannot create the MLflow tracking store sqlite:////proc/.*--no-tracking"):
        ensure_tracking_store("sqlite:////proc/no/such/dir/mlflow.db", "demo")


def test_unreachable_server_is_a_storage_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    with pytest.raises(
        StorageError, match=r"cannot create the MLflow tracking store http://bob:\*\*\*@127\.0\.0\.1:9/"
    ):
        ensure_tracking_store("http://bob:s3cret@127.0.0.1:9/", "demo")
