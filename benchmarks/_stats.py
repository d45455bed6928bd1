"""Interleaved rounds and bootstrap intervals, shared by the benchmark scripts.

A target is judged by the lower bound of a 95% bootstrap interval of the median per-round ratio
over >= 7 interleaved rounds (contender and reference measured back to back in every round), not
by a rounded median: on a shared 2-core host a single window can be off by 2x.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

import numpy as np

__all__ = ["Interval", "bootstrap_median", "describe"]


class Interval(tuple):  # type: ignore[type-arg]
    """``(median, low, high)`` of a bootstrap."""

    @property
    def median(self) -> float:
        return float(self[0])

    @property
    def low(self) -> float:
        return float(self[1])

    @property
    def high(self) -> float:
        return float(self[2])


def bootstrap_median(values: Sequence[float], *, resamples: int = 4000, seed: int = 0) -> Interval:
    """The median of ``values`` and its 95% percentile-bootstrap interval."""
    data = np.asarray(values, dtype=float)
    rng = np.random.default_rng(seed)
    medians = np.median(rng.choice(data, size=(resamples, len(data)), replace=True), axis=1)
    return Interval((float(np.median(data)), float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))))


def describe(ratios: Sequence[float], target: float | None = None, *, parity: bool = False) -> str:
    """``ratio 0.97 [0.93, 1.01] over 7 rounds; target >= 0.95: MET (lower bound 0.96)``."""
    iv = bootstrap_median(ratios)
    text = f"ratio {iv.median:.2f} [95% CI {iv.low:.2f}, {iv.high:.2f}] over {len(ratios)} rounds (min {min(ratios):.2f}, max {max(ratios):.2f}, sd {statistics.pstdev(ratios):.2f})"
    if target is not None:
        if parity:
            met = iv.low >= target and iv.high >= 1.0
            text += f"; parity target (CI contains 1.0, lower bound >= {target:g}): {'MET' if met else 'MISSED'}"
        else:
            text += f"; target >= {target:g} by the lower bound: {'MET' if iv.low >= target else 'MISSED'}"
    return text
