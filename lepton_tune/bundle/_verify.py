"""Compare a bundle's re-measured values with the recorded ones (``lepton-tune verify``).

Stated tolerances (relative to the recorded value, in the worse direction only; a faster or
leaner measurement passes): latency p50 and p95 15%, throughput 10%, memory 10%. Accuracy must be
equal within one test image (1 / number of test images measured), in either direction: the served
model is the same, so its answers must be too. latency p99 and cost are reported, never judged
(p99 over a short window is too noisy to hold a bundle to).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from lepton_tune.exceptions import BundleError

__all__ = ["DEFAULT_TOLERANCES", "Check", "compare_metrics", "parse_tolerances"]

DEFAULT_TOLERANCES: dict[str, float] = {
    "latency_p50_ms": 0.15,
    "latency_p95_ms": 0.15,
    "throughput": 0.10,
    "memory_mb": 0.10,
}
_HIGHER_IS_WORSE = (
    "latency_p50_ms",
    "latency_p95_ms",
    "latency_p99_ms",
    "memory_mb",
    "cost_per_million",
    "device_memory_mb",
)
_REPORTED = ("latency_p99_ms", "cost_per_million", "device_memory_mb")


@dataclass(frozen=True)
class Check:
    """One metric: ``status`` is ``ok``, ``outside`` (worse than the tolerance) or ``info`` (not judged)."""

    name: str
    recorded: float
    measured: float
    change: float  # relative, (measured - recorded) / recorded; for accuracy the absolute difference
    tolerance: float | None
    status: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def parse_tolerances(items: list[str] | None) -> dict[str, float]:
    """``["0.5"]`` sets every relative tolerance; ``["memory_mb=0.3", "accuracy=0.01"]`` sets one each.

    Example:
        >>> parse_tolerances(["0.5", "accuracy=0.02"])["accuracy"]
        0.02

    Raises:
        BundleError: not NUMBER or METRIC=NUMBER, an unknown metric, or a negative value.
    """
    out: dict[str, float] = {}
    known = (*DEFAULT_TOLERANCES, "accuracy")
    for item in items or []:
        name, _, text = item.rpartition("=")
        try:
            value = float(text)
        except ValueError:
            raise BundleError(
                f"--tolerance: {item!r} is not FRACTION or METRIC=FRACTION (e.g. 0.3, memory_mb=0.2)"
            ) from None
        if not 0 <= value < float("inf"):  # also refuses NaN
            raise BundleError(f"--tolerance: {item!r}: must be a finite number >= 0, e.g. 0.3")
        if not name:
            out.update(dict.fromkeys(DEFAULT_TOLERANCES, value))
        elif name in known:
            out[name] = value
        else:
            raise BundleError(f"--tolerance: unknown metric {name!r} in {item!r}; judged metrics: {', '.join(known)}")
    return out


def compare_metrics(
    recorded: dict[str, float],
    measured: dict[str, float],
    *,
    accuracy_samples: int,
    tolerances: dict[str, float] | None = None,
) -> list[Check]:
    """Judge every metric present in both dicts (see the module docstring for the rules).

    Example:
        >>> [c.status for c in compare_metrics({"latency_p95_ms": 10.0}, {"latency_p95_ms": 12.0}, accuracy_samples=100)]
        ['outside']
    """
    limits = {**DEFAULT_TOLERANCES, **(tolerances or {})}
    checks = []
    for name, want in recorded.items():
        got = measured.get(name)
        if got is None or not isinstance(want, (int, float)):
            continue
        if name == "accuracy":
            one_image = limits.get("accuracy", 1.0 / max(accuracy_samples, 1))
            diff = float(got) - float(want)
            checks.append(
                Check(
                    name, float(want), float(got), diff, one_image, "ok" if abs(diff) <= one_image + 1e-9 else "outside"
                )
            )
            continue
        change = (float(got) - float(want)) / abs(float(want)) if want else 0.0
        tol = None if name in _REPORTED else limits.get(name)
        if tol is None:
            checks.append(Check(name, float(want), float(got), change, None, "info"))
            continue
        worse = change if name in _HIGHER_IS_WORSE else -change
        checks.append(Check(name, float(want), float(got), change, tol, "outside" if worse > tol else "ok"))
    return checks
