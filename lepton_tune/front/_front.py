"""The feasible Pareto front of a study and its hypervolume: one definition for every package.

Who may stand on the front (docs/trial-record.md, states): a COMPLETE trial whose constraints all hold, that is
not a noisy measurement (``user_attrs["noisy"]``), not a confirmation re-measure of another trial
(``confirms``) and not a replayed duplicate (``duplicate_of``). The front is the non-dominated set
of those; it is computed here rather than taken from ``study.best_trials`` because a confirmation
that happens to measure better would otherwise push its own original off the front.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front._hypervolume import hypervolume, reference_point, to_loss
from lepton_tune.front._record import TrialRecord

__all__ = [
    "by_first_objective",
    "eligible",
    "feasible_front",
    "hypervolume_share",
    "ideal_point",
    "is_feasible",
    "objective_values",
    "study_directions",
    "study_hypervolume",
    "study_objectives",
    "study_reference",
]


def study_objectives(study: optuna.Study) -> list[str]:
    """Objective names: ``user_attrs["objectives"]``, else the metric names, else ``objective_<i>``."""
    names = study.user_attrs.get("objectives") or study.metric_names
    return [str(n) for n in names] if names else [f"objective_{i}" for i in range(len(study.directions))]


def study_directions(study: optuna.Study) -> list[str]:
    """``"maximize"``/``"minimize"`` per objective."""
    return [d.name.lower() for d in study.directions]


def is_feasible(trial: FrozenTrial) -> bool:
    """COMPLETE and every constraint <= 0 (Optuna's own definition for ``best_trials``)."""
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def eligible(trial: FrozenTrial) -> bool:
    """May stand on the front: feasible, not noisy, not a confirmation, not a replayed duplicate."""
    record = TrialRecord.of(trial)
    return is_feasible(trial) and not record.noisy and record.confirms is None and record.duplicate_of is None


def objective_values(trial: FrozenTrial, objectives: Sequence[str]) -> list[float] | None:
    """The trial's objective values: ``trial.values`` when COMPLETE, else from its recorded metrics.

    Returns None when some objective was never measured (e.g. pruned before the measurement).
    """
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        values = [float(v) for v in trial.values]
    else:
        metrics = TrialRecord.of(trial).metrics or {}
        if not all(isinstance(metrics.get(o), (int, float)) for o in objectives):
            return None
        values = [float(metrics[o]) for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def _dominates(a: np.ndarray, b: np.ndarray) -> bool:
    return bool(np.all(a <= b) and np.any(a < b))


def feasible_front(study: optuna.Study) -> list[FrozenTrial]:
    """The non-dominated eligible trials, by number.

    Example:
        >>> # [t.number for t in feasible_front(optuna.load_study(study_name="s", storage="sqlite:///study.db"))]
    """
    objectives, directions = study_objectives(study), study_directions(study)
    candidates = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        values = objective_values(trial, objectives) if eligible(trial) else None
        if values is not None:
            candidates.append((trial, to_loss(values, directions)))
    front = [t for t, loss in candidates if not any(_dominates(other, loss) for _, other in candidates)]
    return sorted(front, key=lambda t: t.number)


def by_first_objective(
    trials: Sequence[FrozenTrial], objectives: Sequence[str], directions: Sequence[str]
) -> list[FrozenTrial]:
    """``trials`` best first on the first objective, ties by trial number (the order of every front table)."""
    if not objectives:
        return sorted(trials, key=lambda t: t.number)
    sign = -1.0 if directions[0] == "maximize" else 1.0

    def key(trial: FrozenTrial) -> tuple[float, int]:
        values = objective_values(trial, objectives)
        return (sign * values[0] if values is not None else math.inf, trial.number)

    return sorted(trials, key=key)


def study_reference(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> np.ndarray | None:
    """The study's hypervolume reference point, in loss form (see ``reference_point``).

    One rule per study: each objective's budget, else just past the worst value among the COMPLETE
    trials that are neither confirmations (a re-measure of a point already counted) nor noisy (numbers
    measured on a busy host are not trusted).
    """
    objectives, directions = study_objectives(study), study_directions(study)
    trials = study.get_trials(deepcopy=False) if trials is None else trials
    complete = [
        objective_values(t, objectives)
        for t in trials
        if t.state == TrialState.COMPLETE and TrialRecord.of(t).confirms is None and not TrialRecord.of(t).noisy
    ]
    complete = [v for v in complete if v is not None]
    if not complete:
        return None
    ref = reference_point(
        to_loss(np.array(complete), directions), objectives, directions, study.user_attrs.get("budgets") or {}
    )
    return ref if np.all(np.isfinite(ref)) else None


def study_hypervolume(study: optuna.Study) -> float:
    """Hypervolume of the eligible feasible points now, with the study's reference point.

    Example:
        >>> # study_hypervolume(optuna.load_study(study_name="s", storage="sqlite:///lepton-runs/study.db"))
    """
    objectives, directions = study_objectives(study), study_directions(study)
    trials = study.get_trials(deepcopy=False)
    ref = study_reference(study, trials)
    if ref is None:
        return 0.0
    points = [objective_values(t, objectives) for t in trials if eligible(t)]
    return hypervolume(to_loss(np.array([v for v in points if v is not None]), directions), ref)


def ideal_point(values: Sequence[Sequence[float]], directions: Sequence[str]) -> list[float] | None:
    """The best value of each objective among ``values`` (in objective units); None when empty."""
    if not values:
        return None
    losses = to_loss(np.array(values, dtype=float), directions)
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    return [float(v) for v in losses.min(axis=0) * sign]


def hypervolume_share(
    volume: float, ideal: Sequence[float] | None, reference: Sequence[float] | None, directions: Sequence[str]
) -> float | None:
    """``volume`` as a share of the box between ``reference`` and the best value seen per objective.

    1.0 means one point is best on every objective at once; lower means the objectives trade off
    (or the front has gaps). None when the box is empty or unknown.

    Example:
        >>> hypervolume_share(3.0, [1.0, 1.0], [3.0, 3.0], ["minimize", "minimize"])
        0.75
    """
    if ideal is None or reference is None:
        return None
    box = 1.0
    for best, ref, direction in zip(ideal, reference, directions):
        side = (best - ref) if direction == "maximize" else (ref - best)
        if side <= 0:
            return None
        box *= side
    return min(1.0, volume / box) if box > 0 else None
