"""Run one trial's engine phase in its own process: a lean, production-like parent for the shards.

The search process carries Optuna, MLflow, the dataset and every prepared model; counting its
memory as "the engine's parent" would charge each trial for the tool itself. Here a child process
(forked from the engine's forkserver, so it starts with torch already imported) receives the
model, starts the :class:`Engine`, probes, measures and computes accuracy, and sends the record
back. Its PSS plus the shards' PSS is what a server that loads a bundle pays. The child is also
the unit the time and memory limits kill: nothing it does can hang or bloat the search.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.exceptions import LeptonTuneError, error_from
from lepton_tune.measure._memory import pss_mib, rss_mib
from lepton_tune.measure._noise import tree_pids

__all__ = ["EngineJob", "JobOutcome", "run_isolated"]

_EXIT_GRACE_S = 2.0  # a child that has answered is given this long to exit by itself before SIGKILL


@dataclass
class EngineJob:
    """Everything the child needs; the model travels as shared memory (torch reductions).

    ``serve`` is ``"engine"`` (the layout of ``config`` through :class:`Engine`) or
    ``"in-process"`` (the naive baseline: the model called in the trial process itself, in both
    plain forms, the faster kept). The accuracy images are sent to the child only after its
    memory window, so they are never counted as the server's memory.
    """

    model: Any
    config: EngineConfig
    input_shape: tuple[int, ...]
    pool: np.ndarray
    protocol: ProtocolSpec
    prices: PricesSpec
    test_x: np.ndarray | None = None
    test_y: np.ndarray | None = None
    probe_budgets: dict[str, float] = field(default_factory=dict)
    serve: str = "engine"

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "test_x": None, "test_y": None, "_has_test": self.test_x is not None}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


@dataclass
class JobOutcome:
    """``kind`` is "ok", "infeasible" (probe missed a budget), "limit" or "error"."""

    kind: str
    record: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    error_type: str = ""  # "error": the exception's class name in the trial process

    def error(self) -> LeptonTuneError:
        """The trial process's error as the same :class:`LeptonTuneError` subclass, re-raisable here."""
        message = self.reason.split(": ", 1)[1] if self.error_type and ": " in self.reason else self.reason
        return error_from(self.error_type or "EngineError", message)


_SEND_TEST = "send-test-split"


def _probe_miss(seen: dict[str, float], budgets: dict[str, float], margin: float) -> str | None:
    for name, limit in budgets.items():
        value = seen[name]
        missed = value < limit / margin if name == "throughput" else value > limit * margin
        if missed:
            return f"probe: {name} = {value:.4g} misses the budget {limit:g} by more than the margin x{margin:g}"
    return None


def _test_split(job: EngineJob, conn: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Ask the parent for the accuracy images (after the memory window)."""
    if not job.__dict__.get("_has_test"):
        return None
    conn.send(_SEND_TEST)
    split: tuple[np.ndarray, np.ndarray] = conn.recv()
    return split


def _measure(server: Any, job: EngineJob, *, tree: Any = None, harness: bool = True, device_memory: Any = None) -> Any:
    from lepton_tune.measure._protocol import measure_engine

    return measure_engine(
        server,
        job.pool,
        job.protocol,
        cores_used=job.config.cores_used,
        prices=job.prices,
        timeout=job.config.request_timeout_s,
        device_memory=device_memory,
        tree=tree,
        harness=harness,
    )


def _record(measured: Any, stages: dict[str, float], **extra: Any) -> dict[str, Any]:
    return {
        "metrics": dict(measured.metrics),
        "spread": measured.spread,
        "windows": measured.windows,
        "noise": measured.noise,
        "stage_seconds": stages,
        **extra,
    }


def _serve_engine(job: EngineJob, conn: Any, *, warm: bool = False) -> JobOutcome:
    import torch

    from lepton_tune.engine import Engine
    from lepton_tune.measure._protocol import accuracy_through_engine, probe_engine

    # This process only dispatches: its own torch stays single-threaded, so no idle OpenMP team
    # competes with the shards for the cores they were given.
    torch.set_num_threads(1)
    stages: dict[str, float] = {}
    me = os.getpid()
    with Engine(job.model, job.config, input_shape=job.input_shape) as engine:
        stages["start"] = engine.startup_seconds
        if warm:  # a warm trial's shards are not its children, so they did not inherit its cap
            from lepton_tune.measure._zygote_main import cap_shards

            cap_shards(engine.pids()[1:])
        if job.probe_budgets and job.protocol.probe_requests:
            seen = probe_engine(engine, job.pool, job.protocol, timeout=job.config.request_timeout_s)
            miss = _probe_miss(seen, job.probe_budgets, job.protocol.probe_margin)
            if miss:
                return JobOutcome("infeasible", {"metrics": {f"probe_{k}": v for k, v in seen.items()}}, miss)
        # the shards are this process's descendants in a cold trial, the warm forkserver's in a warm one
        measured = _measure(
            engine,
            job,
            tree=lambda: sorted({*tree_pids(me), *engine.pids()}),
            device_memory=lambda: engine.device_memory_mb,
        )
        stages["measure"] = measured.seconds
        record = _record(measured, stages)
        started = time.perf_counter()
        split = _test_split(job, conn)
        if split is not None:
            record["metrics"]["accuracy"] = accuracy_through_engine(engine, *split)
        stages["accuracy"] = time.perf_counter() - started
    return JobOutcome("ok", record)


def _serve_in_process(job: EngineJob, conn: Any) -> JobOutcome:
    """The naive baseline: both plain forms under the same protocol; the faster is the baseline."""
    from lepton_tune.measure._inprocess import FORMS, InProcessServer
    from lepton_tune.measure._protocol import accuracy_through_engine

    stages: dict[str, float] = {}
    me = os.getpid()
    forms: dict[str, Any] = {}
    for form in FORMS:
        with InProcessServer(job.model, form) as server:
            forms[form] = _measure(server, job, tree=lambda: tree_pids(me), harness=form == "serial")
            threads = server.threads
    best = max(FORMS, key=lambda f: forms[f].metrics["throughput"])
    measured = forms[best]
    stages["measure"] = sum(m.seconds for m in forms.values())
    record = _record(
        measured,
        stages,
        baseline_kind="in-process",
        baseline_form=best,
        torch_threads=threads,
        forms={f: {"metrics": m.metrics, "noise": m.noise} for f, m in forms.items()},
    )
    record["noise"] = {**measured.noise, "noisy": any(m.noisy for m in forms.values())}
    started = time.perf_counter()
    split = _test_split(job, conn)
    if split is not None:
        with InProcessServer(job.model, best) as server:
            record["metrics"]["accuracy"] = accuracy_through_engine(server, *split)
    stages["accuracy"] = time.perf_counter() - started
    return JobOutcome("ok", record)


def _child(job: EngineJob, conn: Any, memory_limit_mb: float | None = None, parent_pid: int | None = None) -> None:
    """Runs in the isolated process (``parent_pid``: the search, when the OS parent is a warm zygote)."""
    from lepton_tune.engine import cap_memory, die_with_parent

    die_with_parent(conn, parent_pid=parent_pid)  # the search died: end now, without touching the study
    cap_memory(memory_limit_mb)  # a real cap (RLIMIT_DATA), inherited by the shards, besides the polling below
    try:
        outcome = (
            _serve_in_process(job, conn)
            if job.serve == "in-process"
            else _serve_engine(job, conn, warm=parent_pid is not None)
        )
        conn.send(outcome)
    except BaseException as exc:  # noqa: BLE001 - reported to the parent, which decides
        conn.send(
            JobOutcome(
                "error",
                {"traceback": traceback.format_exc(limit=8)},
                f"{type(exc).__name__}: {exc}",
                error_type=type(exc).__name__,
            )
        )
    finally:
        conn.close()


def run_isolated(
    job: EngineJob, *, deadline: float | None = None, memory_limit_mb: float | None = None, poll_s: float = 0.1
) -> JobOutcome:
    """Run ``job`` in a child process; stop it at ``deadline`` (monotonic) or past ``memory_limit_mb``.

    Returns the child's outcome, or ``JobOutcome("limit", reason=...)`` when a limit stopped it,
    or ``JobOutcome("error", ...)`` when the child died without answering. Inside a
    :func:`warm_trials` block the child is forked from the block's warm zygote instead of started
    cold (same job, same measurement, same limits).

    Example:
        >>> # outcome = run_isolated(EngineJob(model, EngineConfig(), (3, 32, 32), pool, ProtocolSpec(), PricesSpec()))
    """
    receive, proc, tree = _launch(job, memory_limit_mb)
    answered = False
    try:
        while True:
            if receive.poll(poll_s):
                try:
                    message = receive.recv()
                except EOFError:
                    return JobOutcome("error", reason=f"trial process died (exit code {proc.exitcode})")
                if isinstance(message, str) and message == _SEND_TEST:
                    receive.send((job.test_x, job.test_y))
                    continue
                answered = True
                outcome: JobOutcome = message
                return outcome
            if not proc.is_alive() and not receive.poll(0):
                return JobOutcome("error", reason=f"trial process died without an answer (exit code {proc.exitcode})")
            if deadline is not None and time.monotonic() > deadline:
                return JobOutcome("limit", reason="trial time limit (limits.trial_timeout_s) exceeded")
            if memory_limit_mb is not None:
                # RSS from statm costs microseconds; PSS (a page-table walk, ~10 ms a process)
                # only when RSS, which counts shared pages in full, says the limit may be near.
                pids = tree()
                if rss_mib(pids) > memory_limit_mb and (used := pss_mib(pids)) > memory_limit_mb:
                    return JobOutcome(
                        "limit",
                        reason=f"trial memory limit (limits.trial_memory_mb = "
                        f"{memory_limit_mb:g}) exceeded: {used:.0f} MiB",
                    )
    finally:
        _stop(proc, grace_s=_EXIT_GRACE_S if answered else 0.0)
        receive.close()


def _launch(job: EngineJob, memory_limit_mb: float | None) -> tuple[Any, Any, Any]:
    """Start the trial process: forked from the warm zygote when one is active, else cold.

    Returns the search's end of its pipe, a process handle (``is_alive``, ``exitcode``,
    ``kill``, ``join``, ``pid``) and a callable giving the pids the memory limit judges.
    """
    from lepton_tune.engine import mp_context, start_process
    from lepton_tune.measure._zygote import active_warm_server

    warm = active_warm_server()
    if warm is not None:
        modules = sorted({type(m).__module__ for m in job.model.modules()}) if hasattr(job.model, "modules") else []
        receive, handle = warm.fork_trial(modules)
        try:
            receive.send((job, memory_limit_mb))
        except OSError:
            pass  # the trial process is already gone: the caller's loop reports how it died
        return receive, handle, handle.tree
    ctx = mp_context(job.model)
    receive, send = ctx.Pipe(duplex=True)
    proc = ctx.Process(target=_child, args=(job, send, memory_limit_mb), name="lepton-trial", daemon=False)
    start_process(proc, with_main=False)
    send.close()
    return receive, proc, lambda: tree_pids(proc.pid)


def _stop(proc: Any, *, grace_s: float) -> None:
    """End the child and, through their pipes' EOF, its shards; SIGKILL what does not go.

    A child that answered exits by itself within moments; the helpers it started (its own
    forkserver, the resource tracker) take a second or two more to notice, so they are reaped by a
    background thread instead of holding up the next trial (measured: 1.5-2.2 s a trial).
    """
    import psutil

    children = []
    try:
        children = psutil.Process(proc.pid).children(recursive=True)
    except psutil.Error:
        pass
    proc.join(grace_s)
    if proc.is_alive():
        proc.kill()
        proc.join(5)
        _reap(children)
        return
    if children:
        threading.Thread(target=_reap, args=(children,), name="lepton-trial-reaper", daemon=True).start()


def _reap(children: list[Any]) -> None:
    import psutil

    for child in children:
        try:
            child.wait(5)
        except psutil.TimeoutExpired:
            child.kill()
        except psutil.Error:
            pass
