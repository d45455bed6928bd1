"""Optuna storage: URL resolution, redaction, heartbeat + retry, and safe one-time study creation."""

from __future__ import annotations

import fcntl
import random
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna

from lepton_tune._redact import redact_url
from lepton_tune.exceptions import StorageError

if TYPE_CHECKING:
    from lepton_tune.config import StorageSpec

__all__ = [
    "StorageWarning",
    "create_or_load_study",
    "load_existing_study",
    "make_storage",
    "redact_url",
    "resolve_storage_url",
    "storage_failure",
    "wait_for_storage",
]

_CONNECT_TIMEOUT_S = 10  # a silent (firewalled) server is reported, not waited on for minutes
_OUTAGE_LIMIT_S = 120.0  # how long a worker waits for a lost storage before it stops


def resolve_storage_url(url: str | None, run_dir: Path) -> str:
    """The study's storage URL: ``url`` if given, else SQLite in the run directory."""
    if url:
        return url
    return f"sqlite:///{(run_dir / 'study.db').resolve()}"


def _is_journal(url: str) -> bool:
    return url.endswith(".journal") or url.startswith("journal://")


def _first_line(exc: BaseException) -> str:
    lines = redact_url(str(exc)).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def _open(url: str, spec: StorageSpec) -> optuna.storages.BaseStorage:
    """Build the storage; driver errors propagate unchanged (callers classify and redact them)."""
    if _is_journal(url):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = url.removeprefix("journal://")
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        return JournalStorage(JournalFileBackend(path))
    engine_kwargs: dict[str, Any] | None = None
    if not url.startswith("sqlite"):
        engine_kwargs = {"pool_pre_ping": True}  # a restarted server's dead connections are replaced
        if _is_psycopg2(url) and "connect_timeout" not in url:
            engine_kwargs["connect_args"] = {"connect_timeout": _CONNECT_TIMEOUT_S}
    with warnings.catch_warnings():  # heartbeat and its retry callback are "experimental" since Optuna 2.x
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return _SteadyHeartbeatStorage(
            url,
            heartbeat_interval=spec.heartbeat_interval,
            grace_period=spec.grace_period or spec.heartbeat_interval * 3,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=spec.max_retry),
            engine_kwargs=engine_kwargs,
        )


class _SteadyHeartbeatStorage(optuna.storages.RDBStorage):
    """RDBStorage whose heartbeat outlives a storage outage.

    Optuna records heartbeats from a plain thread: one failed write ends that thread with a
    traceback, and the trial, still being measured, then looks dead to every other worker. Here a
    failed heartbeat is said once per outage and retried at the next beat, and its recovery is said.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lost_since: float | None = None

    def record_heartbeat(self, trial_id: int) -> None:
        try:
            super().record_heartbeat(trial_id)
        except Exception as exc:
            failure = storage_failure(exc)
            if failure is None:
                raise
            if self._lost_since is None:
                self._lost_since = time.monotonic()
                warnings.warn(
                    f"lost the Optuna storage {redact_url(self.url)}: {_first_line(failure)}. The "
                    "running trial's heartbeat is retried every beat until it answers again.",
                    StorageWarning,
                    stacklevel=2,
                )
            return
        if self._lost_since is not None:
            waited, self._lost_since = time.monotonic() - self._lost_since, None
            warnings.warn(
                f"the Optuna storage {redact_url(self.url)} answers again after {waited:.0f} s; heartbeats resume",
                StorageWarning,
                stacklevel=2,
            )


def _is_psycopg2(url: str) -> bool:
    return url.startswith(("postgresql://", "postgresql+psycopg2://", "postgres://"))


def _cannot_open(url: str, problem: str) -> str:
    return (
        f"cannot open the Optuna storage {redact_url(url)}: {problem}. Check that the database server is "
        "running and reachable, and the URL's host, port, user, password and database name."
    )


def make_storage(url: str, spec: StorageSpec | None = None) -> optuna.storages.BaseStorage:
    """Build the Optuna storage for ``url``.

    RDB URLs (SQLite, PostgreSQL, MySQL) get a heartbeat and a retry of stale trials, so the trial
    of a killed worker becomes FAIL and is re-queued with the same parameters. ``*.journal``
    paths (or ``journal:///path``) use a journal file, the fast choice for several local workers.

    Raises:
        StorageError: the storage cannot be opened; the message never shows a password.
    """
    from lepton_tune.config import StorageSpec

    try:
        return _open(url, spec or StorageSpec())
    except Exception as exc:  # noqa: BLE001 - sqlalchemy/driver errors vary by backend
        raise StorageError(_cannot_open(url, _first_line(exc))) from None


def _unreachable(url: str) -> str | None:
    """Why no connection can be made to ``url``'s database (None when one can)."""
    if _is_journal(url):
        return None
    import sqlalchemy
    from sqlalchemy.pool import NullPool

    try:
        timeout = _is_psycopg2(url) and "connect_timeout" not in url
        engine = sqlalchemy.create_engine(
            url, poolclass=NullPool, connect_args={"connect_timeout": _CONNECT_TIMEOUT_S} if timeout else {}
        )
        try:
            with engine.connect() as conn:
                conn.execute(sqlalchemy.text("SELECT 1"))
        finally:
            engine.dispose()
    except Exception as exc:  # noqa: BLE001 - any failure to connect is the answer
        return _first_line(exc)
    return None


def storage_failure(exc: BaseException) -> BaseException | None:
    """The lost-connection error behind ``exc`` (its cause/context chain walked), None if there is none.

    An outage surfaces in many shapes (the driver's error, Optuna's ``StorageInternalError``, or an
    error raised while Optuna handled those); the driver's own error is preferred for the message.
    """
    import sqlalchemy.exc

    driver = (sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.DisconnectionError)
    found: BaseException | None = None
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, driver):
            return current
        if found is None and isinstance(current, optuna.exceptions.StorageInternalError):
            found = current
        current = current.__cause__ or current.__context__
    return found


def wait_for_storage(
    url: str, failure: BaseException, *, limit_s: float = _OUTAGE_LIMIT_S, poll_s: float = 2.0
) -> float:
    """Say that the storage was lost, then wait until it answers again; return the seconds waited.

    Raises:
        StorageError: it did not come back within ``limit_s`` seconds.
    """
    warnings.warn(
        f"lost the Optuna storage {redact_url(url)}: {_first_line(failure)}. Waiting up to {limit_s:g} s for it "
        "to come back; completed trials are safe, and the interrupted trial is failed and retried (heartbeat).",
        StorageWarning,
        stacklevel=2,
    )
    started = time.monotonic()
    while True:
        problem = _unreachable(url)
        waited = time.monotonic() - started
        if problem is None:
            warnings.warn(
                f"the Optuna storage {redact_url(url)} answers again after {waited:.0f} s; the study goes on",
                StorageWarning,
                stacklevel=2,
            )
            return waited
        if waited >= limit_s:
            raise StorageError(
                f"the Optuna storage {redact_url(url)} has been unreachable for {waited:.0f} s ({problem}); this "
                "worker stops. Completed trials are safe in the storage: run the same command again once the "
                "database is back."
            )
        time.sleep(poll_s)


class StorageWarning(UserWarning):
    """The Optuna storage was lost for a while; the worker waits for it."""


@contextmanager
def _creation_lock(url: str) -> Iterator[None]:
    """Serialise study/schema creation among processes on this host (SQLite / journal files)."""
    if url.startswith("sqlite:///"):
        lock_path = Path(url.removeprefix("sqlite:///") + ".create.lock")
    elif _is_journal(url):
        lock_path = Path(url.removeprefix("journal://") + ".create.lock")
    else:
        yield
        return
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with open(lock_path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def create_or_load_study(
    url: str,
    study_name: str,
    directions: list[str],
    *,
    spec: StorageSpec | None = None,
    sampler: optuna.samplers.BaseSampler | None = None,
    attempts: int = 6,
) -> optuna.Study:
    """Create the study once, or load it; safe when several workers start at the same moment.

    Schema creation from several processes at once fails on SQLite and PostgreSQL (docs/architecture.md, facts): on
    local files a lock serialises it; on servers a failed attempt is retried after a short random
    back-off (the winner's schema is then simply loaded). A server that cannot be reached at all is
    reported at once, not retried.

    Raises:
        StorageError: the storage cannot be reached, or creation kept failing; never shows a password.
    """
    from lepton_tune.config import StorageSpec

    spec = spec or StorageSpec()
    last: Exception | None = None
    for attempt in range(attempts):
        storage: optuna.storages.BaseStorage | None = None
        try:
            with _creation_lock(url):
                storage = _open(url, spec)
                return optuna.create_study(
                    storage=storage,
                    study_name=study_name,
                    directions=directions,  # type: ignore[arg-type]
                    sampler=sampler,
                    load_if_exists=True,
                )
        except Exception as exc:  # noqa: BLE001 - a concurrent creator's IntegrityError etc., or no server
            problem = _unreachable(url)
            if problem is not None:
                raise StorageError(_cannot_open(url, problem)) from None
            last = exc
            if isinstance(storage, optuna.storages.RDBStorage):
                storage.engine.dispose()
            time.sleep(0.2 + random.random() * (0.5 * (attempt + 1)))
    raise StorageError(
        f"cannot create or load study {study_name!r} in {redact_url(url)} after {attempts} attempts: "
        f"{_first_line(last) if last else 'unknown error'}"
    )


def load_existing_study(url: str, study_name: str | None) -> optuna.Study:
    """Load a study that must already exist; with no name, the storage's only study."""
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).is_file():
        raise StorageError(
            f"no study database at {url.removeprefix('sqlite:///')}; run 'lepton-tune search' first "
            "or pass --run-dir/--storage"
        )
    storage = make_storage(url)
    try:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage, include_best_trial=False)]
    except Exception as exc:  # noqa: BLE001 - driver errors vary by backend
        raise StorageError(f"cannot read studies from {redact_url(url)}: {_first_line(exc)}") from None
    if study_name is None:
        if len(names) != 1:
            raise StorageError(
                f"{redact_url(url)} holds {len(names)} studies ({', '.join(names) or 'none'}); pass --study-name"
            )
        study_name = names[0]
    if study_name not in names:
        raise StorageError(
            f"study {study_name!r} not found in {redact_url(url)}; it holds: {', '.join(names) or 'none'}"
        )
    return optuna.load_study(study_name=study_name, storage=storage)
