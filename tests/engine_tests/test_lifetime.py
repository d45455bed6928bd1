"""Process lifetime: children end within a second or so of their parent's SIGKILL; RLIMIT_DATA caps memory.

Each test starts a real parent process, lets it start its children (a forkserver child, an
Engine's shards), SIGKILLs the parent and watches the children. The children here would
otherwise sleep for minutes (a busy shard never reads its pipe), so "gone within a few seconds"
can only hold through ``die_with_parent``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import psutil
import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG and /proc are Linux")

_LINGER = """
import json, multiprocessing as mp, sys, time
from tests.engine_tests._sleepy import linger
if __name__ == "__main__":
    ctx = mp.get_context("forkserver")
    here, there = ctx.Pipe()
    proc = ctx.Process(target=linger, args=(there, {armed}))
    proc.start()
    assert here.recv() == "ready"
    print(json.dumps([proc.pid]), flush=True)
    time.sleep(300)
"""

_ENGINE = """
import json, time
import numpy as np
from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from tests.engine_tests._sleepy import Sleepy
if __name__ == "__main__":
    engine = Engine(Sleepy(), EngineConfig(shards=2, batch_size=1, pool_slots=4, request_timeout_s=600),
                    input_shape=(4,)).start()
    engine.submit(np.ones(4, np.float32))  # one shard now sleeps inside forward()
    time.sleep(1.0)
    print(json.dumps(engine.pids()[1:]), flush=True)
    time.sleep(300)
"""


def _start_parent(code: str) -> tuple[subprocess.Popen[str], list[int]]:
    parent = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert parent.stdout is not None
    line = parent.stdout.readline()
    if not line:
        parent.kill()
        parent.wait()
        pytest.fail("the parent process ended before starting its children")
    return parent, json.loads(line)


def _kill_and_watch(parent: subprocess.Popen[str], pids: list[int], within: float) -> list[int]:
    """SIGKILL the parent; return the children still alive ``within`` seconds later (then kill them)."""
    procs = [psutil.Process(pid) for pid in pids]
    parent.kill()
    parent.wait()
    _, alive = psutil.wait_procs(procs, timeout=within)
    for proc in alive:
        proc.kill()
    psutil.wait_procs(alive, timeout=5)
    return [p.pid for p in alive]


def test_an_armed_child_ends_with_its_parent() -> None:
    parent, pids = _start_parent(_LINGER.format(armed=True))
    assert _kill_and_watch(parent, pids, within=3.0) == []


def test_an_unarmed_child_outlives_its_parent() -> None:
    """The control: the same child without die_with_parent sleeps on (so the test above can fail)."""
    parent, pids = _start_parent(_LINGER.format(armed=False))
    assert _kill_and_watch(parent, pids, within=3.0) == pids


@pytest.mark.slow
def test_busy_shards_end_with_their_engine_owner() -> None:
    parent, pids = _start_parent(_ENGINE)
    assert len(pids) == 2
    assert _kill_and_watch(parent, pids, within=5.0) == []


_CAP = """
import torch
from lepton_tune.engine._lifetime import cap_memory
cap = cap_memory({limit}) if {limit} else None
try:
    block = torch.empty(4 * 2**30, dtype=torch.uint8)  # 4 GiB reserved, never touched
    print("allocated", cap)
except RuntimeError as exc:
    print("refused", cap, str(exc).splitlines()[0])
"""


def _allocation(limit_mib: int) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", _CAP.format(limit=limit_mib)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def test_cap_memory_refuses_an_allocation_past_the_allowance() -> None:
    out = _allocation(512)
    assert out.startswith("refused ") and "can't allocate memory" in out, out
    assert _allocation(0).startswith("allocated None"), "without the cap the same reservation succeeds"
