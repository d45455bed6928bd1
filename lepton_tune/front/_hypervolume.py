"""Hypervolume of a set of loss vectors, and the reference point lepton-tune derives from a study.

This is the one place that touches Optuna's private ``optuna._hypervolume``; if that module moves, a
small exact fallback (hypervolume by slicing, fine for the few hundred points of a study) keeps the
numbers the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

__all__ = ["REFERENCE_MARGIN", "hypervolume", "reference_point", "to_loss"]

#: How far past the worst observed value the reference point lies, as a fraction of the observed range.
REFERENCE_MARGIN = 0.1


def to_loss(values: Sequence[float] | np.ndarray, directions: Sequence[str]) -> np.ndarray:
    """Objective values as losses (maximize objectives negated), so that lower is better everywhere.

    Example:
        >>> to_loss([0.9, 12.0], ["maximize", "minimize"]).tolist()
        [-0.9, 12.0]
        >>> to_loss([], ["maximize", "minimize"]).shape
        (0, 2)
    """
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    array = np.asarray(values, dtype=float)
    if array.size == 0:  # no point yet (e.g. every trial so far noisy or over budget): an empty set, not shape (0,)
        return np.empty((0, len(sign)))
    losses: np.ndarray = array * sign
    return losses


def reference_point(
    losses: np.ndarray,
    objectives: Sequence[str],
    directions: Sequence[str],
    budgets: Mapping[str, float] | None = None,
) -> np.ndarray:
    """The reference point (in loss form) for the hypervolume of a study.

    Per objective: its budget when the study has one for that metric (a feasible point is never worse
    than its budget, so the budget is the natural "worst acceptable" corner); otherwise the worst value
    among ``losses`` (all COMPLETE trials, feasible or not) plus ``REFERENCE_MARGIN`` times the observed
    range (or times ``|worst|``, or 1.0, when the range is zero), so every observed point adds volume.
    As trials accumulate the reference only moves outward, so the hypervolume history never decreases.

    Example:
        >>> ref = reference_point(np.array([[-0.9, 10.0], [-0.8, 20.0]]), ["accuracy", "latency_p95_ms"],
        ...                       ["maximize", "minimize"], {"accuracy": 0.5})
        >>> ref.tolist()
        [-0.5, 21.0]
    """
    losses = np.asarray(losses, dtype=float).reshape(-1, len(objectives))
    budgets = budgets or {}
    ref = np.empty(len(objectives))
    for j, name in enumerate(objectives):
        if name in budgets:
            ref[j] = -float(budgets[name]) if directions[j] == "maximize" else float(budgets[name])
            continue
        column = losses[:, j][np.isfinite(losses[:, j])]
        if column.size == 0:
            ref[j] = np.nan
            continue
        worst, best = float(column.max()), float(column.min())
        span = worst - best or abs(worst) or 1.0
        ref[j] = worst + REFERENCE_MARGIN * span
    return ref


def hypervolume(losses: np.ndarray, ref: np.ndarray) -> float:
    """Volume dominated by ``losses`` and bounded by ``ref`` (points not better than ``ref`` add nothing).

    Example:
        >>> hypervolume(np.array([[1.0, 2.0], [2.0, 1.0]]), np.array([3.0, 3.0]))
        3.0
    """
    losses = np.asarray(losses, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    if losses.size == 0 or not np.all(np.isfinite(ref)):
        return 0.0
    losses = losses[np.all(np.isfinite(losses), axis=1) & np.all(losses < ref, axis=1)]
    if len(losses) == 0:
        return 0.0
    if losses.shape[1] == 1:
        return float(ref[0] - losses[:, 0].min())
    try:
        from optuna._hypervolume import compute_hypervolume
    except ImportError:  # private module moved: the exact fallback gives the same number
        return _slice_hypervolume(losses, ref)
    return float(compute_hypervolume(losses, ref))


def _slice_hypervolume(losses: np.ndarray, ref: np.ndarray) -> float:
    """Exact hypervolume by slicing along the first objective (HSO); fine for small fronts."""
    if losses.shape[1] == 1:
        return float(ref[0] - losses[:, 0].min()) if len(losses) else 0.0
    points = losses[np.argsort(losses[:, 0])]
    volume = 0.0
    for i, point in enumerate(points):
        upper = points[i + 1, 0] if i + 1 < len(points) else ref[0]
        width = upper - point[0]
        if width > 0:
            volume += width * _slice_hypervolume(points[: i + 1, 1:], ref[1:])
    return float(volume)
