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

import importlib
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
_POLL_S = 0.1
_ACTIVE: list[WarmServer] = []


class WarmTrial:
    """The search's handle on a trial process forked by the zygote (not the search's child)."""

    def __init__(self, pid: int, server: WarmServer) -> None:
        self.pid, self._server = pid, server
        self._exitcode: int | None = None

    def is_alive(self) -> bool:
        import psutil

        try:
            return psutil.Process(self.pid).status() != psutil.STATUS_ZOMBIE
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
                return self._conn.recv()[1]
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


# -- inside the zygote ------------------------------------------------------------------------------

def _import_all(modules: list[str]) -> None:
    for name in modules:
        if name.split(".")[0] == "__main__":
            continue
        try:
            importlib.import_module(name)
        except ImportError:
            pass  # the trial imports it when it unpickles the model, and reports what fails


def _start_shard_server(modules: list[str]) -> int:
    """Start the shards' forkserver here, once, with torch, the shard module and the model's modules."""
    from multiprocessing import forkserver

    from lepton_tune.engine import mp_context

    ctx = mp_context(None)
    preload = list(forkserver._forkserver._preload_modules)
    preload += [m for m in modules if m not in preload and m.split(".")[0] not in ("__main__", "torch")]
    ctx.set_forkserver_preload(preload)
    forkserver.ensure_running()
    return int(forkserver._forkserver._forkserver_pid)


def zygote_main(conn: Any, owner_pid: int, modules: list[str]) -> None:
    """The zygote's loop: fork a trial process per request; end with the search (EOF or its pid gone)."""
    import multiprocessing
    from multiprocessing import reduction
    from multiprocessing.connection import Connection

    # PDEATHSIG follows the search's thread that spawned the zygote: a zygote whose thread ended
    # (an n_jobs worker thread, after optimize) is dead at the next trial and replaced there
    _death_signal()
    # Ctrl-C reaches the whole process group: the search handles it and the zygote ends at its pipe's
    # EOF, quietly (as multiprocessing's own forkserver ignores SIGINT); its trials get the default back
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        _import_all(["torch", "lepton_tune.engine", *modules])
        shard_server = _start_shard_server(modules)
        conn.send(("ready", {"shard_server_pid": shard_server, "threads": threading.active_count()}))
    except BaseException as exc:  # noqa: BLE001 - reported to the search, which raises it
        conn.send(("error", f"{type(exc).__name__}: {exc}"))
        os._exit(1)
    fork = multiprocessing.get_context("fork")
    trials: dict[int, Any] = {}
    codes: dict[int, int] = {}
    while _owner_alive(owner_pid):
        for pid, proc in list(trials.items()):
            if proc.exitcode is not None:  # reaps a finished trial (waitpid WNOHANG)
                codes[pid] = trials.pop(pid).exitcode
        if not conn.poll(_POLL_S):
            continue
        try:
            message = conn.recv()
        except EOFError:
            break
        if message[0] == "exitcode":
            proc = trials.get(message[1])
            conn.send(("exitcode", proc.exitcode if proc is not None else codes.get(message[1])))
            continue
        trial_conn = Connection(reduction.recv_handle(conn))
        try:
            _import_all(message[1])  # a later trial's model may need modules the first did not
            proc = fork.Process(target=_trial_main, args=(trial_conn, owner_pid, shard_server),
                                name="lepton-trial", daemon=False)
            proc.start()
            trials[proc.pid] = proc
            conn.send(("forked", proc.pid))
        except Exception as exc:  # noqa: BLE001 - reported to the search, which raises it
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        finally:
            trial_conn.close()
    os._exit(0)


def _death_signal() -> None:
    """``PR_SET_PDEATHSIG`` without the engine's watchdog thread: the zygote stays single-threaded,
    so that forking it is safe; its loop watches the pipe and the search's pid instead."""
    import ctypes
    import sys

    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)
        except (OSError, AttributeError):
            pass


def _owner_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# -- inside a warm trial process ----------------------------------------------------------------------

def _adopt_shard_server(pid: int) -> None:
    """Use the zygote's forkserver for this trial's shards instead of starting one (and importing torch).

    Multiprocessing checks its forkserver with ``waitpid``, which only its parent (the zygote) may
    call; this process checks that it is alive instead and says so when it is not.
    """
    from multiprocessing import forkserver, resource_tracker

    def ensure_running() -> None:
        resource_tracker.ensure_running()
        if not _owner_alive(pid):
            raise EngineError("warm server: the shards' forkserver died; the next trial starts a new zygote")

    forkserver._forkserver.ensure_running = ensure_running  # type: ignore[method-assign]


def cap_shards(pids: list[int]) -> int:
    """Give a warm trial's shards the ``RLIMIT_DATA`` cap that a cold trial's shards inherit.

    A cold trial's shards descend from the trial process and inherit its cap
    (``engine.cap_memory``); a warm trial's shards are children of the shared forkserver, so the
    trial process hands them its own cap. Returns how many were capped.
    """
    import resource

    if not hasattr(resource, "prlimit"):
        return 0
    soft, _ = resource.getrlimit(resource.RLIMIT_DATA)
    if soft == resource.RLIM_INFINITY:
        return 0
    capped = 0
    for pid in pids:
        try:
            hard = resource.prlimit(pid, resource.RLIMIT_DATA)[1]
            resource.prlimit(pid, resource.RLIMIT_DATA, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard))
            capped += 1
        except (OSError, ValueError):
            continue
    return capped


def _trial_main(conn: Any, owner_pid: int, shard_server_pid: int) -> None:
    """A warm trial process: take the job from the search, then run it exactly as a cold trial does."""
    from lepton_tune.measure._isolated import _child

    signal.signal(signal.SIGINT, signal.default_int_handler)  # as a cold trial process has it
    _adopt_shard_server(shard_server_pid)
    try:
        job, memory_limit_mb = conn.recv()
    except EOFError:
        os._exit(1)  # the search went away before sending the job
    _child(job, conn, memory_limit_mb, parent_pid=owner_pid)
