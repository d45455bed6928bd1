"""Measurement: workloads, latency percentiles, memory (summed PSS), accuracy, host fingerprint."""

from __future__ import annotations

from lepton_tune.measure._host import FINGERPRINT_KEYS, host_fingerprint, host_id
from lepton_tune.measure._isolated import EngineJob, JobOutcome, run_isolated
from lepton_tune.measure._memory import PssSampler, pss_mib
from lepton_tune.measure._noise import NoiseMeter, WindowLoad
from lepton_tune.measure._protocol import (
    Measurement,
    accuracy_through_engine,
    cost_per_million,
    measure_engine,
    probe_engine,
    request_pool,
)
from lepton_tune.measure._workload import WindowResult, closed_loop, open_loop
from lepton_tune.measure._zygote import WarmServer, warm_trials

__all__ = [
    "FINGERPRINT_KEYS",
    "EngineJob",
    "JobOutcome",
    "Measurement",
    "NoiseMeter",
    "PssSampler",
    "WarmServer",
    "WindowLoad",
    "WindowResult",
    "accuracy_through_engine",
    "closed_loop",
    "cost_per_million",
    "host_fingerprint",
    "host_id",
    "measure_engine",
    "open_loop",
    "probe_engine",
    "pss_mib",
    "request_pool",
    "run_isolated",
    "warm_trials",
]
