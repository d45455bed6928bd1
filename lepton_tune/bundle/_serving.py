"""One engine per bundle per host under ``mlflow models serve``: extra workers wait as standbys.

A bundle's engine starts K shards on the cores its study measured. ``mlflow models serve --workers N``
(or ``MLFLOW_MODELS_WORKERS`` in MLflow's Docker image, whose default is the CPU count) loads the model
in N uvicorn worker processes: N engines would each start K shards and oversubscribe those cores, so
no number the bundle records would hold. The first worker to load takes an exclusive ``flock`` on a
lock file named by the bundle's manifest digest (in the temp dir, never inside the bundle, which may
be read-only and must hold only its listed files) and serves. Every other worker on the host warns and
waits as a standby: it starts no engine and accepts no connection (uvicorn's workers share one
listening socket and only a loaded worker accepts), so the server stays usable with all requests on
the one engine, whose batcher groups concurrent requests. If the serving worker dies, the kernel
releases its lock and a standby takes over.

Refusing instead (raising in the loader) would stop the whole server: uvicorn stops its parent when
a worker fails before it starts serving. A plain ``mlflow.pyfunc.load_model`` in a user's process
never waits: it only warns when a server already holds the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import tempfile
import threading
import time
import warnings
from pathlib import Path
from typing import IO, Any

__all__ = ["SERVER_ENV", "ServingLock", "lock_path"]

#: Set by ``mlflow models serve`` in its uvicorn workers' environment (``scoring_server._SERVER_MODEL_PATH``).
SERVER_ENV = "__pyfunc_model_path__"
_POLL_S = 0.5


def lock_path(digest: str) -> Path:
    """The host-wide lock file of the bundle whose manifest has ``digest`` (same bundle, same lock, any copy)."""
    root = Path(tempfile.gettempdir()) / f"lepton-tune-serving-{os.getuid()}"
    root.mkdir(mode=0o700, exist_ok=True)
    return root / f"{digest[:32]}.lock"


class ServingLock:
    """Hold the bundle's serving lock (a server worker) or just check it (any other process)."""

    def __init__(self, digest: str, what: str) -> None:
        self.path = lock_path(digest)
        self.what = what
        self._fh: IO[str] | None = None

    def acquire(self, *, serving: bool | None = None) -> ServingLock:
        """Under ``mlflow models serve`` (``serving`` None: from the environment): hold it, waiting as a standby
        while another worker serves. Elsewhere: warn if a server holds it, hold nothing."""
        serving = bool(os.environ.get(SERVER_ENV)) if serving is None else serving
        fh = self.path.open("a+")
        if _try_lock(fh):
            if not serving:
                fh.close()  # a library user's process never blocks a server started later
                return self
            self._own(fh)
            return self
        owner = _owner(self.path)
        if not serving:
            fh.close()
            warnings.warn(
                f"{self.what}: a server (pid {owner}) already serves this bundle on this host; this process "
                "starts a second engine on the same cores, so both run slower than the bundle measured",
                stacklevel=3,
            )
            return self
        warnings.warn(
            f"{self.what}: another worker (pid {owner}) already serves this bundle on this host with its "
            f"engine; this worker (pid {os.getpid()}) starts no engine and waits as a standby, taking over if "
            "that one exits. Serve a bundle with one worker: mlflow models serve --workers 1 (the default; "
            "MLFLOW_MODELS_WORKERS=1 in an MLflow Docker image)",
            stacklevel=3,
        )
        _wait_for(fh)
        self._own(fh)
        return self

    def _own(self, fh: IO[str]) -> None:
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh

    @property
    def held(self) -> bool:
        return self._fh is not None

    def release(self) -> None:
        if self._fh is not None:
            self._fh.close()  # closing the descriptor drops the flock
            self._fh = None


def _try_lock(fh: IO[str]) -> bool:
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _owner(path: Path, *, within_s: float = 2.0) -> str:
    """The serving worker's pid. It writes it just after taking the lock, so a reader that lost the race
    may see an empty file or an earlier server's pid for a moment: read until a live process is named."""
    deadline = time.monotonic() + within_s
    while True:
        with contextlib.suppress(OSError):
            text = path.read_text().strip()
            if text.isdigit() and _alive(int(text)):
                return text
        if time.monotonic() > deadline:
            return "?"
        time.sleep(0.05)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, another user's
        return True
    return True


def _wait_for(fh: IO[str]) -> None:
    """Poll for the lock; SIGTERM/SIGINT end the wait (uvicorn's own handlers only take note, so a blocked
    standby would otherwise never exit when the server stops)."""
    previous: dict[signal.Signals, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous[sig] = signal.signal(sig, _leave)
    try:
        while not _try_lock(fh):
            time.sleep(_POLL_S)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _leave(signum: int, frame: Any) -> None:
    raise SystemExit(128 + signum)
