"""Warm trials: forked from one zygote per search, measured like cold ones, limits and kills stay local."""

from __future__ import annotations

import os
import signal
import statistics
import threading
import time

import numpy as np
import psutil
import pytest
import torch

from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.measure import EngineJob, JobOutcome, run_isolated, warm_trials
from tests.engine_tests._nets import SHAPE, tiny_net
from tests.engine_tests._sleepy import Sleepy

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="the zygote forks")


def _job(shards: int = 2, requests: int = 40) -> EngineJob:
    model = tiny_net(0).eval()
    pool = np.random.default_rng(0).random((8, *SHAPE), dtype=np.float32)
    labels = model(torch.from_numpy(pool)).argmax(1).numpy()
    protocol = ProtocolSpec(
        warmup=2, requests=requests, repeats=2, concurrency=2, probe_requests=0, noise_threshold=4.0
    )
    return EngineJob(
        model, EngineConfig(shards=shards, threads_per_shard=1), SHAPE, pool, protocol, PricesSpec(), pool, labels
    )


def _sleepy_job() -> EngineJob:
    pool = np.ones((4, 4), np.float32)
    return EngineJob(
        Sleepy(),
        EngineConfig(shards=1, request_timeout_s=600),
        (4,),
        pool,
        ProtocolSpec(warmup=1, requests=10, repeats=1, concurrency=1, probe_requests=0),
        PricesSpec(),
    )


def _wait_for(check, timeout: float = 60.0) -> bool:  # type: ignore[no-untyped-def]
    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        if check():
            return True
        time.sleep(0.05)
    return False


def test_warm_trials_measure_and_the_zygote_stays_single_threaded() -> None:
    job = _job()
    with warm_trials(True) as server:
        assert server is not None
        outcomes = [run_isolated(job) for _ in range(3)]
        assert server.threads == 1, "the zygote must not start threads before it forks"
        assert server.starts == 1, "one zygote serves every trial of the block"
        zygote = server.pid
    for outcome in outcomes:
        assert outcome.kind == "ok", outcome.reason
        assert outcome.record["metrics"]["accuracy"] == 1.0  # the engine's own outputs, through warm shards
    assert set(outcomes[-1].record["stage_seconds"]) == {"start", "measure", "accuracy"}
    assert _wait_for(lambda: not psutil.pid_exists(zygote) or psutil.Process(zygote).status() == "zombie", 5.0)


def test_warm_memory_matches_a_cold_trial_of_the_same_point() -> None:
    """Interleaved cold and warm trials of one layout: the medians agree within 10%."""
    job = _job()
    cold: list[float] = []
    warm: list[float] = []
    with warm_trials(True):
        run_isolated(job)  # the first warm trial waits for the shards' forkserver to finish importing
    for _ in range(3):
        cold.append(run_isolated(job).record["metrics"]["memory_mb"])
        with warm_trials(True):
            warm.append(run_isolated(job).record["metrics"]["memory_mb"])
    ratio = statistics.median(warm) / statistics.median(cold)
    assert 0.9 <= ratio <= 1.1, f"warm {warm} vs cold {cold} MiB"


def test_a_killed_zygote_fails_only_that_trial_and_the_next_runs() -> None:
    outcomes: list[JobOutcome] = []
    with warm_trials(True) as server:
        assert server is not None
        worker = threading.Thread(target=lambda: outcomes.append(run_isolated(_sleepy_job())))
        worker.start()
        # the trial's shard is up (a child of the zygote's forkserver) and sleeps in forward()
        assert _wait_for(
            lambda: bool(server.shard_server_pid) and len(psutil.Process(server.shard_server_pid).children()) > 0
        )
        first_zygote = server.pid
        assert first_zygote is not None
        os.kill(first_zygote, signal.SIGKILL)
        worker.join(30)
        assert not worker.is_alive()
        assert outcomes[0].kind == "error" and "trial process died" in outcomes[0].reason, outcomes[0]
        after = run_isolated(_job())
        assert after.kind == "ok", after.reason
        assert server.starts == 2 and server.pid != first_zygote


def test_limits_stop_only_the_warm_trial() -> None:
    with warm_trials(True) as server:
        assert server is not None
        assert run_isolated(_job()).kind == "ok"
        timed_out = run_isolated(_sleepy_job(), deadline=time.monotonic() + 3.0)
        assert timed_out.kind == "limit" and "trial time limit" in timed_out.reason
        # above what the trial process itself allocates (its RLIMIT_DATA cap holds), below the tree's PSS
        too_big = run_isolated(_job(), memory_limit_mb=150.0)
        assert too_big.kind == "limit" and "trial memory limit (limits.trial_memory_mb = 150)" in too_big.reason, (
            too_big
        )
        # the sleeping shard of the stopped trial follows its trial process
        assert _wait_for(lambda: not psutil.Process(server.shard_server_pid).children(), 5.0)
        assert run_isolated(_job()).kind == "ok"
        assert server.starts == 1, "a limit kills the trial process, never the zygote"


_SEARCH = """
import json, threading, time
import numpy as np, psutil
from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.measure import EngineJob, run_isolated, warm_trials
from tests.engine_tests._sleepy import Sleepy

def report():
    while True:  # the zygote, its forkserver, the trial process and the sleeping shard
        pids = [p.pid for p in psutil.Process().children(recursive=True)]
        if len(pids) >= 5:
            break
        time.sleep(0.1)
    time.sleep(1.0)
    print(json.dumps([p.pid for p in psutil.Process().children(recursive=True)]), flush=True)

if __name__ == "__main__":
    threading.Thread(target=report, daemon=True).start()
    pool = np.ones((4, 4), np.float32)
    job = EngineJob(Sleepy(), EngineConfig(shards=1, request_timeout_s=600), (4,), pool,
                    ProtocolSpec(warmup=1, requests=10, repeats=1, concurrency=1, probe_requests=0), PricesSpec())
    with warm_trials(True):
        run_isolated(job)
"""


def _describe(proc: psutil.Process) -> str:
    try:
        return f"{proc.pid} {proc.name()} {' '.join(proc.cmdline())[-60:]}"
    except psutil.Error:
        return str(proc.pid)


@pytest.mark.slow
def test_the_warm_tree_ends_within_a_second_of_the_search() -> None:
    """WAVE2 decision 10: zygote, its forkserver, the trial process and its shard all go with the search."""
    import json
    import subprocess
    import sys
    import textwrap

    from tests.conftest import REPO

    search = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SEARCH)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert search.stdout is not None
    line = search.stdout.readline()
    procs = [psutil.Process(pid) for pid in json.loads(line)] if line else []
    names = {p.pid: _describe(p) for p in procs}
    search.kill()
    search.wait()
    assert len(procs) >= 5, f"expected the search's helpers, the zygote, its forkserver, a trial and a shard: {names}"
    started, ended = time.monotonic(), {}
    while len(ended) < len(procs) and time.monotonic() - started < 5.0:
        for proc in procs:
            if proc.pid not in ended and (not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE):
                ended[proc.pid] = time.monotonic() - started
        time.sleep(0.02)
    alive = [p for p in procs if p.pid not in ended]
    for proc in alive:
        proc.kill()
    assert not alive, f"left behind after the search's SIGKILL: {[names[p.pid] for p in alive]}"
    slow = {names[pid]: round(took, 2) for pid, took in ended.items() if took > 1.5}
    assert not slow, f"ended more than 1.5 s after the search: {slow}"


@pytest.mark.slow
def test_a_runaway_allocation_in_a_warm_shard_hits_the_trials_cap() -> None:
    """Warm shards are not the trial's children: the trial hands them its RLIMIT_DATA cap (cap_shards)."""
    from tests.engine_tests._sleepy import Hog

    pool = np.ones((4, 4), np.float32)
    job = EngineJob(
        Hog(gib=4.0),
        EngineConfig(shards=1),
        (4,),
        pool,
        ProtocolSpec(warmup=1, requests=10, repeats=1, concurrency=1, probe_requests=0),
        PricesSpec(),
    )
    with warm_trials(True):
        outcome = run_isolated(job, memory_limit_mb=1536)
    assert outcome.kind == "error", outcome
    assert "can't allocate memory" in outcome.reason, outcome.reason
