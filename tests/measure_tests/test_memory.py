"""PSS sampling on real processes: shared pages count once, the peak is kept."""

from __future__ import annotations

import multiprocessing as mp
import os
import time

from lepton_tune.measure import PssSampler, pss_mib


def _hold(size_mb: int, ready, stop) -> None:
    block = bytearray(size_mb * 1024 * 1024)
    for i in range(0, len(block), 4096):
        block[i] = 1
    ready.set()
    stop.wait(30)


def test_peak_follows_a_child_that_allocates() -> None:
    ctx = mp.get_context("spawn")
    ready, stop = ctx.Event(), ctx.Event()
    child = ctx.Process(target=_hold, args=(64, ready, stop))
    child.start()
    try:
        before = pss_mib([os.getpid()])
        with PssSampler(lambda: [os.getpid(), child.pid], hz=50) as sampler:
            assert ready.wait(60)
            time.sleep(0.2)
        assert sampler.samples >= 5
        assert sampler.peak_mib >= before + 60  # the child's 64 MiB are private, so they count fully
    finally:
        stop.set()
        child.join(10)


def test_dead_pid_counts_zero() -> None:
    assert pss_mib([2**22 + 12345]) == 0.0
