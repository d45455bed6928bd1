"""The isolated trial process: real engine inside, limits stop it, nothing is left behind."""

from __future__ import annotations

import time

import numpy as np
import psutil
import pytest
import torch

from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec
from lepton_tune.measure import EngineJob, run_isolated


class _Tiny(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 4, 3)
        self.fc = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).mean(dim=(2, 3)))


@pytest.fixture(scope="module")
def job() -> EngineJob:
    torch.manual_seed(0)
    model = _Tiny().eval()
    pool = np.random.default_rng(0).random((8, 3, 8, 8), dtype=np.float32)
    labels = model(torch.from_numpy(pool)).argmax(1).numpy()
    protocol = ProtocolSpec(warmup=2, requests=10, repeats=2, concurrency=2, probe_requests=0)
    return EngineJob(model, EngineConfig(shards=1), (3, 8, 8), pool, protocol, PricesSpec(), pool, labels)


def _trial_processes() -> list[psutil.Process]:
    """Children other than multiprocessing's own long-lived helpers (forkserver, resource tracker)."""
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if (
                child.name() == "lepton-trial"
                or "lepton-trial" in " ".join(child.cmdline())
                or child.ppid() != psutil.Process().pid
            ):
                found.append(child)
        except psutil.Error:
            continue
    return found


def _no_children() -> bool:
    deadline = time.time() + 10
    while time.time() < deadline:
        if not _trial_processes():
            return True
        time.sleep(0.2)
    print([(p.pid, p.ppid(), p.cmdline()[-1][:60]) for p in _trial_processes()])
    return False


def test_measures_in_a_child(job: EngineJob) -> None:
    outcome = run_isolated(job)
    assert outcome.kind == "ok", outcome.reason
    metrics = outcome.record["metrics"]
    assert metrics["accuracy"] == 1.0  # labels are the model's own argmax: the engine must agree
    assert metrics["memory_mb"] > 0 and metrics["throughput"] > 0
    assert set(outcome.record["stage_seconds"]) == {"start", "measure", "accuracy"}
    assert _no_children()


def test_memory_limit_stops_the_trial(job: EngineJob) -> None:
    outcome = run_isolated(job, memory_limit_mb=1.0)
    assert outcome.kind == "limit"
    assert "trial memory limit (limits.trial_memory_mb = 1) exceeded" in outcome.reason
    assert _no_children()


def test_time_limit_stops_the_trial(job: EngineJob) -> None:
    outcome = run_isolated(job, deadline=time.monotonic() + 0.2)
    assert outcome.kind == "limit" and "trial time limit" in outcome.reason
    assert _no_children()


def test_engine_error_comes_back_with_its_type(job: EngineJob) -> None:
    bad = EngineJob(job.model, EngineConfig(shards=2, mode="pipeline"), (3, 8, 8), job.pool, job.protocol, job.prices)
    outcome = run_isolated(bad)
    assert outcome.kind in ("ok", "error")
    if outcome.kind == "error":
        assert outcome.reason.startswith("EngineLayoutError")
