"""The trial process and its shards end with the search that started them; RLIMIT_DATA caps a trial."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import psutil
import pytest

from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.measure import EngineJob, run_isolated
from tests.conftest import REPO
from tests.engine_tests._sleepy import Hog

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG, RLIMIT_DATA"),
]

_SEARCH = """
import json, threading, time
import numpy as np, psutil
from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.measure import EngineJob, run_isolated
from tests.engine_tests._sleepy import Sleepy

def report():
    time.sleep(4.0)  # the trial process has started its shard, which now sleeps in forward()
    me = psutil.Process()
    print(json.dumps([p.pid for p in me.children(recursive=True)]), flush=True)

if __name__ == "__main__":
    threading.Thread(target=report, daemon=True).start()
    pool = np.ones((4, 4), np.float32)
    job = EngineJob(Sleepy(), EngineConfig(shards=1, request_timeout_s=600), (4,), pool,
                    ProtocolSpec(warmup=1, requests=10, repeats=1, concurrency=1, probe_requests=0), PricesSpec())
    run_isolated(job)
"""


def test_the_trial_tree_ends_when_the_search_is_killed() -> None:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_SEARCH)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    procs = [psutil.Process(pid) for pid in json.loads(line)] if line else []
    names = []
    for proc in procs:
        try:
            names.append(proc.name())
        except psutil.Error:
            pass
    parent.kill()
    parent.wait()
    assert len(procs) >= 3, f"expected forkserver, trial process and shard, got {names}"
    _, alive = psutil.wait_procs(procs, timeout=5.0)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=5)
    assert not alive, f"left behind after the search's SIGKILL: {[p.pid for p in alive]}"


def test_a_runaway_allocation_fails_in_the_trial_not_on_the_host() -> None:
    """A shard reserving 4 GiB (never touched, so PSS polling cannot see it) hits the RLIMIT_DATA cap."""
    pool = np.ones((4, 4), np.float32)
    job = EngineJob(
        Hog(gib=4.0),
        EngineConfig(shards=1),
        (4,),
        pool,
        ProtocolSpec(warmup=1, requests=10, repeats=1, concurrency=1, probe_requests=0),
        PricesSpec(),
    )
    # the limit sits well above the trial's own footprint (~500 MiB PSS: torch + a shard), far below 4 GiB
    outcome = run_isolated(job, memory_limit_mb=1536)
    assert outcome.kind == "error", outcome
    assert "can't allocate memory" in outcome.reason, outcome.reason
    assert run_isolated(job).kind == "ok", "without a memory limit the host's memory is the cap: 4 GiB fits"
