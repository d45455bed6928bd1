"""``lepton_tune.verify``: re-measure a bundle on this host under its recorded protocol."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from lepton_tune.bundle import Bundle, Check, compare_metrics, open_bundle, parse_tolerances
from lepton_tune.config import DatasetSpec, PricesSpec, ProtocolSpec
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import ConfigError, DataError, EngineError
from lepton_tune.measure import (
    FINGERPRINT_KEYS,
    EngineJob,
    host_fingerprint,
    request_pool,
    run_isolated,
)

__all__ = ["EXIT_BUSY", "EXIT_DRIFTED", "VerifyResult", "verify"]

EXIT_DRIFTED = 3  # a measured value is outside its tolerance
EXIT_BUSY = 4  # other processes kept the host busy in every window: nothing was judged


@dataclass(frozen=True)
class VerifyResult:
    """The outcome of :func:`verify`.

    ``ok`` is True within every tolerance, False when something drifted, None when the host was
    busy (nothing judged); ``exit_code`` is what ``lepton-tune verify`` exits with (0, 3 or 4).
    """

    bundle: Path
    ok: bool | None
    checks: list[Check] = field(default_factory=list)
    measured: dict[str, Any] = field(default_factory=dict)
    spread: dict[str, Any] = field(default_factory=dict)
    noise: dict[str, Any] = field(default_factory=dict)
    host_differences: list[str] = field(default_factory=list)
    message: str = ""

    @property
    def busy(self) -> bool:
        return self.ok is None

    @property
    def exit_code(self) -> int:
        return EXIT_BUSY if self.ok is None else 0 if self.ok else EXIT_DRIFTED

    @property
    def outside(self) -> list[Check]:
        return [c for c in self.checks if c.status == "outside"]

    def as_dict(self) -> dict[str, Any]:
        if self.busy:
            return {
                "bundle": str(self.bundle),
                "ok": None,
                "busy": True,
                "message": self.message,
                "noise": self.noise,
                "measured": self.measured,
            }
        return {
            "bundle": str(self.bundle),
            "ok": self.ok,
            "host_differences": self.host_differences,
            "checks": [c.as_dict() for c in self.checks],
            "measured": self.measured,
            "spread": self.spread,
        }


def verify(
    bundle: str | os.PathLike[str],
    *,
    tolerances: list[str] | dict[str, float] | None = None,
    noise_threshold: float | None = None,
) -> VerifyResult:
    """Check the bundle's files, serve it in a fresh isolated process like the study's trials, and
    compare what it measures now with what it recorded.

    Tolerances, in the worse direction only: latency p50/p95 +15%, throughput -10%, memory +10%;
    accuracy equal within one test image (``tolerances`` overrides, as ``["memory_mb=0.2"]`` or
    a dict). ``noise_threshold`` (cores) overrides the bundle protocol's.

    Raises:
        BundleError: a file is missing or its checksum differs.
        EngineError: the bundle could not be served here.

    Example:
        >>> import lepton_tune as lt
        >>> # result = lt.verify("bundle/"); result.ok, [c.name for c in result.outside]
    """
    path = Path(bundle)
    given = [f"{k}={v}" for k, v in tolerances.items()] if isinstance(tolerances, dict) else tolerances
    limits = parse_tolerances(given)
    opened = open_bundle(path)  # checksums first
    recorded = opened.manifest["measured"]
    differences = host_differences(opened.manifest.get("host", {}))
    protocol = ProtocolSpec(**recorded.get("protocol", {}))
    if noise_threshold is not None:
        if not 0 <= noise_threshold < float("inf"):
            raise ConfigError(f"--noise-threshold: must be a finite number of cores >= 0, got {noise_threshold}")
        protocol = protocol.model_copy(update={"noise_threshold": noise_threshold})
    samples = int(recorded.get("accuracy_samples") or 0)
    split = _test_split(opened, samples)
    pool = request_pool(
        split[0]
        if split is not None
        else np.random.default_rng(0).standard_normal((64, *opened.input_shape)).astype(np.float32)
    )
    # Same isolated process as the study's trials, so memory compares like with like.
    job = EngineJob(
        opened.module,
        opened.config,
        tuple(opened.input_shape),
        pool,
        protocol,
        PricesSpec(**recorded.get("prices", {})),
        test_x=split[0] if split else None,
        test_y=split[1] if split else None,
    )
    outcome = run_isolated(job)
    if outcome.kind != "ok":
        raise EngineError(f"verify: the bundle could not be measured: {outcome.reason}")
    metrics, noise = dict(outcome.record["metrics"]), outcome.record.get("noise") or {}
    if noise.get("noisy"):
        message = (
            f"host busy during measurement: foreign load {noise.get('foreign_load_max', 0.0):.0%} of a core in "
            f"{noise.get('noisy_windows', 0)} window(s) (threshold {noise.get('threshold', 0.0):.0%}, "
            f"{noise.get('retries', 0)} re-measures); re-run on a quiet host"
        )
        return VerifyResult(path, None, measured=metrics, noise=noise, host_differences=differences, message=message)
    checks = compare_metrics(recorded["metrics"], metrics, accuracy_samples=samples or len(pool), tolerances=limits)
    return VerifyResult(
        path,
        not any(c.status == "outside" for c in checks),
        checks,
        metrics,
        outcome.record["spread"],
        noise,
        differences,
    )


def host_differences(recorded: dict[str, Any]) -> list[str]:
    """The fingerprint keys where this host differs from the recorded one, as ``key: old -> new``."""
    here = host_fingerprint()
    return [f"{k}: {recorded.get(k)!r} -> {here.get(k)!r}" for k in FINGERPRINT_KEYS if recorded.get(k) != here.get(k)]


def _test_split(bundle: Bundle, samples: int) -> tuple[np.ndarray, np.ndarray] | None:
    """The study's test images, or None (with a warning) when its dataset is not readable here."""
    try:
        data = load_dataset(DatasetSpec(**bundle.manifest["dataset"]))
    except DataError as exc:
        warnings.warn(
            f"the study's dataset is not readable here ({exc}); accuracy is not re-measured and timing "
            "uses random images",
            stacklevel=3,
        )
        return None
    test_x, test_y = data.test[0].numpy(), data.test[1].numpy()
    return (test_x[:samples], test_y[:samples]) if samples else (test_x, test_y)
