"""The noise guard: a window in which other processes burn CPU is re-measured, then marked noisy."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from lepton_tune.config import PricesSpec, ProtocolSpec
from lepton_tune.measure import NoiseMeter, measure_engine
from lepton_tune.measure._inprocess import InProcessServer
from tests.measure_tests._hog import cpu_hogs


def _server() -> InProcessServer:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3),
        torch.nn.ReLU(),
        torch.nn.AdaptiveAvgPool2d(1),
        torch.nn.Flatten(),
        torch.nn.Linear(16, 10),
    ).eval()
    return InProcessServer(net, "serial")


def _images() -> np.ndarray:
    return np.random.default_rng(0).random((16, 3, 32, 32), dtype=np.float32)


def test_meter_counts_a_hog_as_foreign_and_itself_as_the_tree() -> None:
    meter = NoiseMeter(lambda: [os.getpid()])
    with cpu_hogs(1):
        meter.start()
        end = __import__("time").perf_counter() + 0.4
        while __import__("time").perf_counter() < end:
            pass  # this process burns a core too: it is the tree
        load = meter.stop()
    assert load.foreign > 0.5, load  # the hog's core (minus what the scheduler gave us)
    assert load.tree > 0.1, load  # our busy loop is counted as ours, not foreign


def test_a_busy_window_is_remeasured_then_the_run_is_marked_noisy() -> None:
    protocol = ProtocolSpec(warmup=5, requests=40, repeats=2, noise_retries=2, noise_threshold=0.1)
    with _server() as server, cpu_hogs(2):
        measured = measure_engine(server, _images(), protocol, cores_used=1, prices=PricesSpec())
    assert measured.noisy and measured.noise["discarded_windows"] == 2
    assert measured.noise["noisy_windows"] == 4  # 2 discarded + 2 kept past the budget
    assert len(measured.windows) == 4 and sum(bool(w.get("discarded")) for w in measured.windows) == 2
    assert all(w["foreign_load"] > 0.1 for w in measured.windows)
    assert measured.metrics["foreign_load"] == pytest.approx(measured.noise["foreign_load_max"])


def test_memory_is_measured_in_its_own_window_and_the_sampler_cost_is_reported() -> None:
    protocol = ProtocolSpec(warmup=5, requests=40, repeats=2, noise_retries=0, noise_threshold=64)
    with _server() as server:
        measured = measure_engine(server, _images(), protocol, cores_used=1, prices=PricesSpec())
    assert measured.metrics["memory_mb"] > 10 and not measured.noisy
    assert measured.noise["sampler_hz"] > 0 and 0 <= measured.noise["sampler_cpu"] < 2
    assert all("harness_cpu" in w and "tree_cpu" in w for w in measured.windows)
