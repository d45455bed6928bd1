"""The measurement protocol: warm-up, R measured windows, percentiles as medians over windows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from lepton_tune.config import PricesSpec, ProtocolSpec
from lepton_tune.measure._memory import PssSampler
from lepton_tune.measure._workload import WindowResult, closed_loop, open_loop

if TYPE_CHECKING:
    from lepton_tune.engine import Engine

__all__ = ["Measurement", "accuracy_through_engine", "cost_per_million", "measure_engine", "probe_engine"]

_PERCENTILES = {"latency_p50_ms": 50, "latency_p95_ms": 95, "latency_p99_ms": 99}


@dataclass(frozen=True)
class Measurement:
    """What one protocol run measured (DESIGN.md's definitions)."""

    metrics: dict[str, float]
    spread: dict[str, float]
    windows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "spread": self.spread, "windows": self.windows, "seconds": self.seconds}


def cost_per_million(*, cores_used: int, memory_mb: float, throughput: float, prices: PricesSpec) -> float:
    """USD per million images: (cores * $/core-h + GiB * $/GiB-h) / (images per hour) * 1e6.

    Example:
        >>> round(cost_per_million(cores_used=2, memory_mb=1024, throughput=100, prices=PricesSpec()), 4)
        0.2519
    """
    if throughput <= 0:
        return float("inf")
    per_hour = cores_used * prices.usd_per_core_hour + (memory_mb / 1024.0) * prices.usd_per_GiB_hour
    return per_hour / (throughput * 3600.0) * 1e6


def _window(engine: Engine, images: np.ndarray, protocol: ProtocolSpec, requests: int, timeout: float) -> WindowResult:
    if protocol.loop == "open":
        assert protocol.rate is not None
        return open_loop(engine, images, requests=requests, rate=protocol.rate, timeout=timeout)
    return closed_loop(engine, images, requests=requests, concurrency=protocol.concurrency, timeout=timeout)


def probe_engine(engine: Engine, images: np.ndarray, protocol: ProtocolSpec, *, timeout: float) -> dict[str, float]:
    """A short unwarmed window: enough to tell a clearly hopeless point (p95 and memory)."""
    requests = max(protocol.probe_requests, 1)
    with PssSampler(engine.pids, hz=protocol.memory_hz) as sampler:
        window = _window(engine, images, protocol, requests, timeout)
    return {
        "latency_p95_ms": float(np.percentile(window.latencies_ms, 95)),
        "throughput": window.throughput,
        "memory_mb": sampler.peak_mib,
    }


def measure_engine(
    engine: Engine,
    images: np.ndarray,
    protocol: ProtocolSpec,
    *,
    cores_used: int,
    prices: PricesSpec,
    timeout: float = 60.0,
    device_memory: Any = None,
) -> Measurement:
    """Run the protocol against a started engine.

    Warm-up requests are sent first and not measured. Then ``repeats`` windows of ``requests``
    requests each; per window the latency percentiles and throughput are computed, and the
    reported value is the median over windows, with the spread (max - min) beside it. Memory is
    the peak summed PSS of the engine's processes over all measured windows.

    Args:
        engine: a started engine.
        images: request pool, float32 ``[N, C, H, W]``; requests cycle through it.
        protocol: the study's protocol.
        cores_used: for the cost metric.
        prices: for the cost metric.
        timeout: per-request timeout in seconds.
        device_memory: optional callable returning peak device MiB (CUDA).
    """
    started = time.perf_counter()
    if protocol.warmup:
        closed_loop(engine, images, requests=protocol.warmup, concurrency=protocol.concurrency, timeout=timeout)
    windows: list[dict[str, float]] = []
    with PssSampler(engine.pids, hz=protocol.memory_hz) as sampler:
        for _ in range(protocol.repeats):
            window = _window(engine, images, protocol, protocol.requests, timeout)
            row = {name: float(np.percentile(window.latencies_ms, q)) for name, q in _PERCENTILES.items()}
            row["throughput"] = window.throughput
            windows.append(row)
    metrics = {name: float(np.median([w[name] for w in windows])) for name in windows[0]}
    spread = {name: float(max(w[name] for w in windows) - min(w[name] for w in windows)) for name in windows[0]}
    metrics["memory_mb"] = sampler.peak_mib
    metrics["cost_per_million"] = cost_per_million(
        cores_used=cores_used, memory_mb=sampler.peak_mib, throughput=metrics["throughput"], prices=prices
    )
    if device_memory is not None:
        value = device_memory()
        if value is not None:
            metrics["device_memory_mb"] = float(value)
    return Measurement(metrics=metrics, spread=spread, windows=windows, seconds=time.perf_counter() - started)


def accuracy_through_engine(engine: Engine, x: np.ndarray, y: np.ndarray, *, chunk: int = 256) -> float:
    """Top-1 accuracy of the engine's own outputs on ``(x, y)``.

    Example:
        >>> # acc = accuracy_through_engine(engine, test_x, test_y)
    """
    correct = 0
    for start in range(0, len(x), chunk):
        logits = engine.predict(x[start : start + chunk])
        correct += int((np.asarray(logits).argmax(axis=1) == y[start : start + chunk]).sum())
    return correct / max(len(x), 1)
