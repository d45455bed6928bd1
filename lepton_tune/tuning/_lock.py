"""A host-wide lock so that measurements never overlap (threads, processes, workers on one host)."""

from __future__ import annotations

import fcntl
import os
import tempfile
import time
from pathlib import Path

__all__ = ["HostLock"]


class HostLock:
    """Exclusive ``flock`` on one file per host; each ``acquire`` opens its own descriptor, so
    threads of one process exclude each other too.

    Example:
        >>> with HostLock():
        ...     pass
    """

    def __init__(self, path: Path | None = None) -> None:
        default = Path(os.environ.get("LEPTON_TUNE_LOCK", Path(tempfile.gettempdir()) / "lepton-tune-measure.lock"))
        self.path = path or default
        self._fd: int | None = None
        self.waited_s = 0.0

    def __enter__(self) -> HostLock:
        start = time.perf_counter()
        self._fd = os.open(self.path, os.O_CREAT | os.O_RDWR, 0o666)
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        self.waited_s = time.perf_counter() - start
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None


class _Held:
    """The lock is already held by the caller (flock is not re-entrant across descriptors)."""

    def __enter__(self) -> _Held:
        return self

    def __exit__(self, *exc: object) -> None:
        return None
