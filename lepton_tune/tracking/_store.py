"""The MLflow tracking store: default location in the run directory and one-time creation."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from lepton_tune.exceptions import StorageError
from lepton_tune.tracking._redact import redact_url

__all__ = ["default_tracking_uri", "ensure_tracking_store", "resolve_tracking_uri", "sqlite_path", "study_tracking_uri"]


def default_tracking_uri(run_dir: str | os.PathLike[str]) -> str:
    """``sqlite:///<absolute run_dir>/mlflow.db``: MLflow's own SQLite file (never Optuna's study.db).

    Example:
        >>> default_tracking_uri("/tmp/runs")
        'sqlite:////tmp/runs/mlflow.db'
    """
    return f"sqlite:///{(Path(run_dir) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(flag: str | None, run_dir: str | os.PathLike[str], study_uri: str | None = None) -> str:
    """The MLflow tracking URI every command uses, in one order: the ``--tracking-uri`` flag, then
    ``$MLFLOW_TRACKING_URI``, then the study's ``tracking.uri``, then the run directory's mlflow.db.

    Example:
        >>> resolve_tracking_uri("http://127.0.0.1:5000", "/tmp/runs", "sqlite:////tmp/other.db")
        'http://127.0.0.1:5000'
    """
    return flag or os.environ.get("MLFLOW_TRACKING_URI") or study_uri or default_tracking_uri(run_dir)


def study_tracking_uri(study_attrs: dict[str, object]) -> str | None:
    """The ``tracking.uri`` a study was searched with (its recorded spec), if any."""
    spec = study_attrs.get("spec")
    tracking = spec.get("tracking") if isinstance(spec, dict) else None
    uri = tracking.get("uri") if isinstance(tracking, dict) else None
    return uri if isinstance(uri, str) and uri else None


def sqlite_path(uri: str) -> Path | None:
    """The file behind a ``sqlite:///`` URI, or None for any other store."""
    if not uri.startswith("sqlite:///"):
        return None
    return Path(uri.removeprefix("sqlite:///").split("?", 1)[0])


@contextmanager
def _creation_lock(uri: str) -> Iterator[None]:
    """Serialise schema creation among the processes of this host (SQLite only)."""
    path = sqlite_path(uri)
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".create.lock"), "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def ensure_tracking_store(
    uri: str, experiment_name: str, artifact_location: str | os.PathLike[str] | None = None
) -> str:
    """Create the MLflow schema and the study's experiment once; return the experiment id.

    Call it before any worker starts: several processes opening a fresh MLflow SQLite file at once
    corrupt it (docs/architecture.md, facts). On SQLite a file lock next to the database makes later concurrent calls
    safe; they find the experiment and return its id. A deleted experiment of that name is restored.

    Args:
        uri: tracking URI (``sqlite:///...`` or a tracking server ``http(s)://...``).
        experiment_name: the study name.
        artifact_location: where the experiment's artifacts go (a local path or URI); used only when
            the experiment is created.

    Raises:
        StorageError: the store cannot be created or reached.

    Example:
        >>> # ensure_tracking_store(default_tracking_uri(run_dir), "quickstart", run_dir / "mlartifacts")
    """
    from mlflow import MlflowClient

    location = None
    if artifact_location is not None:
        text = os.fspath(artifact_location)
        location = text if "://" in text else str(Path(text).resolve())
    try:
        with _creation_lock(uri):
            client = MlflowClient(tracking_uri=uri)
            experiment = client.get_experiment_by_name(experiment_name)
            if experiment is None:
                return client.create_experiment(experiment_name, artifact_location=location)
            if experiment.lifecycle_stage == "deleted":
                client.restore_experiment(experiment.experiment_id)
            return str(experiment.experiment_id)
    except OSError as exc:
        raise StorageError(
            f"cannot create the MLflow tracking store {redact_url(uri)}: {exc}. "
            "Choose a writable --run-dir or --tracking-uri, or pass --no-tracking."
        ) from None
    except Exception as exc:  # noqa: BLE001 - MlflowException, SQLAlchemy and HTTP errors vary by store
        first = redact_url(str(exc)).strip().splitlines()
        raise StorageError(
            f"cannot create the MLflow tracking store {redact_url(uri)}: {first[0] if first else type(exc).__name__}. "
            "Check the tracking URI (or the server), or pass --no-tracking."
        ) from None
