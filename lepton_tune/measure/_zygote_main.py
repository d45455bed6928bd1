"""What runs inside the warm zygote and inside each trial process forked from it (see ``_zygote``).

The zygote is spawned by the search, imports torch and the engine, starts the shards' forkserver
and then only forks: one thread, no model, no thread pool. Each trial process adopts that
forkserver for its shards, hands its shards its own ``RLIMIT_DATA`` cap and runs the job exactly
as a cold trial process does (``_isolated._child``).
"""

from __future__ import annotations

import importlib
import os
import signal
import threading
from typing import Any

from lepton_tune.exceptions import EngineError

__all__ = ["cap_shards", "zygote_main"]

_POLL_S = 0.1


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
    preload = list(forkserver._forkserver._preload_modules)  # type: ignore[attr-defined]
    preload += [m for m in modules if m not in preload and m.split(".")[0] not in ("__main__", "torch")]
    ctx.set_forkserver_preload(preload)
    forkserver.ensure_running()
    return int(forkserver._forkserver._forkserver_pid)  # type: ignore[attr-defined]


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
            proc = fork.Process(
                target=_trial_main, args=(trial_conn, owner_pid, shard_server), name="lepton-trial", daemon=False
            )
            proc.start()
            assert proc.pid is not None  # started
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
            resource.prlimit(
                pid, resource.RLIMIT_DATA, (soft if hard == resource.RLIM_INFINITY else min(soft, hard), hard)
            )
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
