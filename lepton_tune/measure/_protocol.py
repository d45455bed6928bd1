"""The measurement protocol: warm-up, R timed windows guarded against noise, then a memory window.

Timed windows carry no memory sampler: reading ``smaps_rollup`` costs about 10 ms of CPU per
process, so a 50 Hz sampler alone took a core of this 2-core host and crushed all-core layouts
(docs/architecture.md, facts: the same layout at 205-273 img/s sampled at 50 Hz, 443-619 at 20 Hz, ~1040 unsampled).
Memory is measured in its own untimed window under the same load. Each timed window is bracketed
by a :class:`~lepton_tune.measure._noise.NoiseMeter`; a window in which other processes used more
than ``protocol.noise_threshold`` of a core is discarded and measured again, up to
``protocol.noise_retries`` times; past that budget the windows are kept and the result is marked
noisy. The harness's own CPU (the load generator's threads, the memory sampler) is measured and
reported beside the numbers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from lepton_tune.config import PricesSpec, ProtocolSpec
from lepton_tune.measure._memory import PssSampler, pss_mib
from lepton_tune.measure._noise import NoiseMeter
from lepton_tune.measure._workload import WindowResult, closed_loop, open_loop

__all__ = [
    "Measurement",
    "accuracy_through_engine",
    "cost_per_million",
    "measure_engine",
    "probe_engine",
    "request_pool",
]

_PERCENTILES = {"latency_p50_ms": 50, "latency_p95_ms": 95, "latency_p99_ms": 99}
_JITTER_CPU_S = 0.002
_POOL_BYTES = 8 << 20  # request images held by the measured process: at most 8 MiB (and 8-64 images)


@dataclass(frozen=True)
class Measurement:
    """What one protocol run measured (docs/architecture.md, definitions).

    ``windows`` lists every timed window, discarded ones included (``discarded: 1.0``), each with
    its ``foreign_load`` (cores used outside the measured tree, steal included) and
    ``harness_cpu`` (cores used by the load generator). ``noise`` sums them up.
    """

    metrics: dict[str, float]
    spread: dict[str, float]
    windows: list[dict[str, float]] = field(default_factory=list)
    seconds: float = 0.0
    noise: dict[str, Any] = field(default_factory=dict)

    @property
    def noisy(self) -> bool:
        return bool(self.noise.get("noisy"))

    def as_dict(self) -> dict[str, Any]:
        return {
            "metrics": self.metrics,
            "spread": self.spread,
            "windows": self.windows,
            "seconds": self.seconds,
            "noise": self.noise,
        }


def request_pool(images: np.ndarray) -> np.ndarray:
    """The images requests cycle through: 8 to 64 of ``images``, at most 8 MiB.

    Example:
        >>> request_pool(np.zeros((100, 3, 224, 224), np.float32)).shape[0]
        13
    """
    per_image = max(int(images[0].nbytes), 1) if len(images) else 1
    count = min(len(images), 64, max(8, _POOL_BYTES // per_image))
    return np.ascontiguousarray(images[:count], dtype=np.float32)


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


def _window(server: Any, images: np.ndarray, protocol: ProtocolSpec, requests: int, timeout: float) -> WindowResult:
    if protocol.loop == "open":
        assert protocol.rate is not None
        return open_loop(server, images, requests=requests, rate=protocol.rate, timeout=timeout)
    return closed_loop(server, images, requests=requests, concurrency=protocol.concurrency, timeout=timeout)


def probe_engine(engine: Any, images: np.ndarray, protocol: ProtocolSpec, *, timeout: float) -> dict[str, float]:
    """A short unwarmed window: enough to tell a clearly hopeless point (p95, throughput, memory after it)."""
    requests = max(protocol.probe_requests, 1)
    window = _window(engine, images, protocol, requests, timeout)
    return {
        "latency_p95_ms": float(np.percentile(window.latencies_ms, 95)),
        "throughput": window.throughput,
        "memory_mb": pss_mib(engine.pids()),
    }


def _timed_windows(
    server: Any, images: np.ndarray, protocol: ProtocolSpec, timeout: float, tree: Callable[[], list[int]]
) -> tuple[list[dict[str, float]], dict[str, Any]]:
    meter = NoiseMeter(tree)
    kept: list[dict[str, float]] = []
    every: list[dict[str, float]] = []
    retries = 0
    while len(kept) < protocol.repeats:
        meter.start()
        window = _window(server, images, protocol, protocol.requests, timeout)
        load = meter.stop()
        row = {name: float(np.percentile(window.latencies_ms, q)) for name, q in _PERCENTILES.items()}
        row.update(
            throughput=window.throughput,
            foreign_load=load.outside,
            steal=load.steal,
            tree_cpu=load.tree,
            harness_cpu=window.client_cpu_s / max(window.wall_s, 1e-9),
        )
        # below 2 ms of foreign CPU a window is not judged: scheduler jitter, not a competing load
        busy = load.outside > protocol.noise_threshold and load.outside * load.wall_s > _JITTER_CPU_S
        if busy and retries < protocol.noise_retries:
            retries += 1
            every.append({**row, "discarded": 1.0})
            continue
        row["noisy"] = float(busy)
        every.append(row)
        kept.append(row)
    noisy_kept = sum(1 for w in kept if w["noisy"])
    noise = {
        "noisy": noisy_kept > 0,
        "noisy_windows": retries + noisy_kept,
        "discarded_windows": retries,
        "foreign_load_max": max(w["foreign_load"] for w in kept),
        "threshold": protocol.noise_threshold,
        "retries": protocol.noise_retries,
    }
    return every, noise


def measure_engine(
    engine: Any,
    images: np.ndarray,
    protocol: ProtocolSpec,
    *,
    cores_used: int,
    prices: PricesSpec,
    timeout: float = 60.0,
    device_memory: Any = None,
    tree: Callable[[], list[int]] | None = None,
    harness: bool = True,
) -> Measurement:
    """Run the protocol against a started server (an :class:`Engine` or an in-process server).

    Warm-up requests are sent first and not measured. Then ``repeats`` timed windows of
    ``requests`` requests each, re-measured while the host is busy (see the module docstring);
    per window the latency percentiles and throughput are computed, and the reported value is the
    median over the kept windows, with the spread (max - min) beside it. Then one memory window
    under the same load: the peak summed PSS of ``engine.pids()`` sampled at ``memory_hz``.

    Args:
        engine: anything with ``submit(image) -> Future`` and ``pids() -> list[int]``.
        images: request pool, float32 ``[N, C, H, W]``; requests cycle through it.
        protocol: the study's protocol.
        cores_used: for the cost metric.
        prices: for the cost metric.
        timeout: per-request timeout in seconds.
        device_memory: optional callable returning peak device MiB (CUDA).
        tree: the measured process tree (default ``engine.pids``), for the noise guard.
        harness: report the load generator's CPU as ``harness_cpu`` (False when the client
            threads are the server, as for the in-process ``concurrent`` form).
    """
    started = time.perf_counter()
    if protocol.warmup:
        closed_loop(engine, images, requests=protocol.warmup, concurrency=protocol.concurrency, timeout=timeout)
    windows, noise = _timed_windows(engine, images, protocol, timeout, tree or engine.pids)
    kept = [w for w in windows if not w.get("discarded")]
    names = (*_PERCENTILES, "throughput")
    metrics = {name: float(np.median([w[name] for w in kept])) for name in names}
    spread = {name: float(max(w[name] for w in kept) - min(w[name] for w in kept)) for name in names}
    with PssSampler(engine.pids, hz=protocol.memory_hz) as sampler:
        _window(engine, images, protocol, protocol.requests, timeout)
    metrics["memory_mb"] = sampler.peak_mib
    metrics["cost_per_million"] = cost_per_million(
        cores_used=cores_used, memory_mb=sampler.peak_mib, throughput=metrics["throughput"], prices=prices
    )
    metrics["foreign_load"] = noise["foreign_load_max"]
    if harness:
        metrics["harness_cpu"] = float(np.median([w["harness_cpu"] for w in kept]))
    noise["sampler_cpu"] = sampler.cpu_share
    noise["sampler_hz"] = sampler.achieved_hz
    if device_memory is not None:
        value = device_memory()
        if value is not None:
            metrics["device_memory_mb"] = float(value)
    return Measurement(
        metrics=metrics, spread=spread, windows=windows, seconds=time.perf_counter() - started, noise=noise
    )


def accuracy_through_engine(engine: Any, x: np.ndarray, y: np.ndarray, *, chunk: int = 256) -> float:
    """Top-1 accuracy of the server's own outputs on ``(x, y)``.

    Example:
        >>> # acc = accuracy_through_engine(engine, test_x, test_y)
    """
    correct = 0
    for start in range(0, len(x), chunk):
        logits = engine.predict(x[start : start + chunk])
        correct += int((np.asarray(logits).argmax(axis=1) == y[start : start + chunk]).sum())
    return correct / max(len(x), 1)
