"""Warm trials: one long-lived zygote per search, from which each trial's process is forked.

A cold trial process starts its own forkserver for its shards, and that forkserver imports torch
again: 1.3-1.6 s of a 2.2 s quickstart trial (benchmarks/README.md, "Cost of the tool itself").
The zygote pays that once per search. It imports torch, the engine and the measurement modules,
starts the shards' forkserver (torch and the shard module preloaded) and then only waits: it
never runs a model and never starts a thread pool, so forking it is safe and cheap. Per trial it
receives one end of a fresh pipe from the search (``SCM_RIGHTS``), forks a trial process on it and
says the pid; the search sends the job straight to that process, which starts its shards from
the shared forkserver.

What stays as it was (WAVE2 decision 2): the trial's memory is its own process plus its shards
(the zygote and the forkserver are never in the measured pids); the time and memory limits kill
the trial process only; a killed or dead zygote is replaced before the next trial. Lifetime
(decision 10): the zygote ends at the EOF of its pipe from the search or when the search's pid is
gone; a trial process dies with the zygote (``PDEATHSIG``) and with the search (its own pipe's
EOF and the search's pid); shards follow their trial process (``die_with_parent`` in the shard).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from lepton_tune.exceptions import EngineError

__all__ = ["WarmServer", "active_warm_server", "warm_trials"]

_READY_TIMEOUT_S = 120.0
_ACTIVE: list[WarmServer] = []


class WarmTrial:
    """The search's handle on a trial process forked by the zygote (not the search's child)."""

    def __init__(self, pid: int, server: WarmServer) -> None:
        self.pid, self._server = pid, server
        self._exitcode: int | None = None

    def is_alive(self) -> bool:
        import psutil

        try:
            return bool(psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE)
        except psutil.Error:
            return False

    @property
    def exitcode(self) -> int | None:
        if self._exitcode is None and not self.is_alive():
            self._exitcode = self._server.exitcode(self.pid)
        return self._exitcode

    def kill(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass

    def join(self, timeout: float | None = None) -> None:
        limit = time.monotonic() + (timeout if timeout is not None else 1e9)
        while self.is_alive() and time.monotonic() < limit:
            time.sleep(0.02)

    def tree(self) -> list[int]:
        """The trial process, its children and the shards it started from the shared forkserver."""
        from lepton_tune.measure._noise import tree_pids

        shards = tree_pids(self._server.shard_server_pid)[1:] if self._server.shard_server_pid else []
        return [*tree_pids(self.pid), *shards]


class WarmServer:
    """The zygote of one search: started at the first trial, replaced when it dies, closed at the end."""

    def __init__(self) -> None:
        self._proc: Any = None
        self._conn: Any = None
        self._lock = threading.Lock()
        self.shard_server_pid: int | None = None
        self.threads = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def alive(self) -> bool:
        return self._proc is not None and self._proc.is_alive()

    def _start(self, modules: list[str]) -> None:
        from torch.multiprocessing import get_context as torch_context

        from lepton_tune.engine import start_process

        self._close_unlocked()
        # Spawned, not forked from the search's forkserver: a trial forked from the zygote then shares
        # its torch pages with one process (the zygote), as a cold trial shares them with the
        # forkserver it came from, so PSS splits them the same way and memory stays comparable.
        ctx = torch_context("spawn")
        mine, theirs = ctx.Pipe(duplex=True)
        from lepton_tune.measure._zygote_main import zygote_main

        proc = ctx.Process(target=zygote_main, args=(theirs, os.getpid(), modules), name="lepton-warm", daemon=False)
        start_process(proc, with_main=False)
        theirs.close()
        if not mine.poll(_READY_TIMEOUT_S):
            proc.kill()
            raise EngineError(f"warm server: the zygote did not start within {_READY_TIMEOUT_S:g} s")
        try:
            kind, value = mine.recv()
        except EOFError:
            raise EngineError(f"warm server: the zygote died while starting (exit code {proc.exitcode})") from None
        if kind != "ready":
            raise EngineError(f"warm server: the zygote failed to start: {value}")
        self._proc, self._conn = proc, mine
        self.shard_server_pid, self.threads = value["shard_server_pid"], value["threads"]
        self.starts += 1

    def fork_trial(self, modules: list[str]) -> tuple[Any, WarmTrial]:
        """A fresh trial process on a new pipe; returns (the search's end of the pipe, the handle).

        A dead zygote (killed, crashed) is replaced first, once; a failure after that raises.
        """
        from multiprocessing import reduction

        from lepton_tune.engine import mp_context

        with self._lock:
            for attempt in (1, 2):
                if not self.alive():
                    self._start(modules)
                mine, theirs = mp_context(None).Pipe(duplex=True)
                try:
                    self._conn.send(("fork", modules))
                    reduction.send_handle(self._conn, theirs.fileno(), self._proc.pid)
                    kind, value = self._conn.recv()
                except (EOFError, OSError):
                    mine.close()
                    self._close_unlocked()
                    if attempt == 2:
                        raise EngineError("warm server: the zygote died twice while forking a trial") from None
                    continue
                finally:
                    theirs.close()
                if kind != "forked":
                    mine.close()
                    raise EngineError(f"warm server: forking a trial failed: {value}")
                return mine, WarmTrial(int(value), self)
        raise AssertionError("unreachable")

    def exitcode(self, pid: int) -> int | None:
        """The exit code of a finished trial process (None if the zygote no longer knows it)."""
        with self._lock:
            if not self.alive():
                return None
            try:
                self._conn.send(("exitcode", pid))
                code: int | None = self._conn.recv()[1]
                return code
            except (EOFError, OSError):
                return None

    def close(self) -> None:
        with self._lock:
            self._close_unlocked()

    def _close_unlocked(self) -> None:
        proc, conn, self._proc, self._conn = self._proc, self._conn, None, None
        if conn is not None:
            conn.close()  # EOF: the zygote exits
        if proc is not None:
            proc.join(2.0)
            if proc.is_alive():
                proc.kill()
                proc.join(2.0)


def active_warm_server() -> WarmServer | None:
    """The warm server of the innermost :func:`warm_trials` block of this process, if any."""
    return _ACTIVE[-1] if _ACTIVE else None


@contextmanager
def warm_trials(enabled: bool = True) -> Iterator[WarmServer | None]:
    """Within the block, :func:`run_isolated` forks trial processes from one warm zygote.

    Example:
        >>> with warm_trials(True) as server:  # doctest: +SKIP
        ...     outcome = run_isolated(job)  # forked from server's zygote
    """
    if not enabled:
        yield None
        return
    server = WarmServer()
    _ACTIVE.append(server)
    try:
        yield server
    finally:
        _ACTIVE.remove(server)
        server.close()
