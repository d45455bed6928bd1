"""The data behind the report's Pareto figures: front, infeasible points, baselines, hypervolume.

Everything here reads the study only; figures are drawn from :class:`ParetoInfo` elsewhere.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.report._hypervolume import hypervolume, reference_point, to_loss

__all__ = [
    "ParetoInfo",
    "feasible_front",
    "is_feasible",
    "objective_values",
    "pareto_info",
    "study_directions",
    "study_hypervolume",
    "study_objectives",
]


class ParetoInfo(NamedTuple):
    """What the Pareto figures, the hypervolume curve and the front table show.

    Attributes:
        study_name: the study's name.
        objectives: metric names in objective order.
        directions: ``"maximize"``/``"minimize"`` per objective.
        front: the feasible Pareto front (COMPLETE, every constraint <= 0, non-dominated), by number.
        feasible: feasible trials that are not on the front.
        infeasible: trials with objective values that miss a budget (COMPLETE with a constraint > 0,
            or PRUNED whose recorded ``metrics`` hold every objective).
        baseline: baseline trials (``user_attrs["baseline"]``) that have objective values.
        values: trial number -> objective values, for every trial listed above.
        counts: ``complete``, ``feasible``, ``front``, ``infeasible`` (PRUNED + budgets missed), ``failed``, ``running``.
        reference_point: the hypervolume reference, in objective units (see ``reference_point``).
        hypervolume: hypervolume of the front at the end.
        hypervolume_history: ``(trial number, hypervolume)`` after each finished trial, all with
            the final reference point (so the curve never decreases).
    """

    study_name: str
    objectives: list[str]
    directions: list[str]
    front: list[FrozenTrial]
    feasible: list[FrozenTrial]
    infeasible: list[FrozenTrial]
    baseline: list[FrozenTrial]
    values: dict[int, list[float]]
    counts: dict[str, int]
    reference_point: list[float] | None
    hypervolume: float
    hypervolume_history: list[tuple[int, float]]


def study_objectives(study: optuna.Study) -> list[str]:
    """Objective names: ``user_attrs["objectives"]``, else the metric names, else ``objective_<i>``."""
    names = study.user_attrs.get("objectives") or study.metric_names
    return [str(n) for n in names] if names else [f"objective_{i}" for i in range(len(study.directions))]


def study_directions(study: optuna.Study) -> list[str]:
    return [d.name.lower() for d in study.directions]


def is_feasible(trial: FrozenTrial) -> bool:
    """COMPLETE and every constraint <= 0 (Optuna's own definition for ``best_trials``)."""
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def objective_values(trial: FrozenTrial, objectives: list[str]) -> list[float] | None:
    """The trial's objective values: ``trial.values`` when COMPLETE, else from its recorded metrics.

    Returns None when some objective was never measured (e.g. pruned before the measurement).
    """
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        values = [float(v) for v in trial.values]
    else:
        metrics = trial.user_attrs.get("metrics") or {}
        if not all(isinstance(metrics.get(o), (int, float)) for o in objectives):
            return None
        values = [float(metrics[o]) for o in objectives]
    return values if all(math.isfinite(v) for v in values) else None


def feasible_front(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front via Optuna's public ``best_trials`` (which skips infeasible trials)."""
    trials = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
    if not any(is_feasible(t) for t in trials):
        return []
    # A replayed duplicate (same point as an earlier trial) is listed once, as lepton-tune show does.
    # A confirmation (a re-measure of a chosen point before export) is that point again: not listed.
    return sorted((t for t in study.best_trials if t.user_attrs.get("duplicate_of") is None
                   and t.user_attrs.get("confirms") is None), key=lambda t: t.number)


def _reference(study: optuna.Study, trials: list[FrozenTrial], objectives: list[str],
               directions: list[str]) -> np.ndarray | None:
    complete = [objective_values(t, objectives) for t in trials if t.state == TrialState.COMPLETE]
    complete = [v for v in complete if v is not None]
    if not complete:
        return None
    losses = to_loss(np.array(complete), directions)
    ref = reference_point(losses, objectives, directions, study.user_attrs.get("budgets") or {})
    return ref if np.all(np.isfinite(ref)) else None


def study_hypervolume(study: optuna.Study) -> float:
    """Hypervolume of the feasible front now, with the reference point of ``reference_point``.

    Example:
        >>> # study_hypervolume(optuna.load_study(study_name="s", storage="sqlite:///lepton-runs/study.db"))
    """
    objectives, directions = study_objectives(study), study_directions(study)
    trials = study.get_trials(deepcopy=False)
    ref = _reference(study, trials, objectives, directions)
    if ref is None:
        return 0.0
    feasible = [objective_values(t, objectives) for t in trials if is_feasible(t)]
    return hypervolume(to_loss(np.array([v for v in feasible if v is not None]), directions), ref)


def _hv_history(trials: list[FrozenTrial], ref: np.ndarray | None, objectives: list[str],
                directions: list[str]) -> list[tuple[int, float]]:
    history: list[tuple[int, float]] = []
    points: list[list[float]] = []
    current = 0.0
    for trial in sorted(trials, key=lambda t: t.number):
        if not trial.state.is_finished():
            continue
        values = objective_values(trial, objectives) if is_feasible(trial) else None
        if values is not None and ref is not None:
            points.append(values)
            current = hypervolume(to_loss(np.array(points), directions), ref)
        history.append((trial.number, current))
    return history


def pareto_info(study: optuna.Study) -> ParetoInfo:
    """Read everything the Pareto figures need from ``study``.

    Example:
        >>> # info = pareto_info(optuna.load_study(study_name="s", storage="sqlite:///lepton-runs/study.db"))
        >>> # [t.number for t in info.front], info.hypervolume
    """
    objectives, directions = study_objectives(study), study_directions(study)
    trials = study.get_trials(deepcopy=False)
    front = feasible_front(study)
    on_front = {t.number for t in front}
    values: dict[int, list[float]] = {}
    feasible, infeasible, baseline = [], [], []
    for trial in trials:
        vals = objective_values(trial, objectives)
        if vals is None or trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        values[trial.number] = vals
        if trial.user_attrs.get("baseline"):
            baseline.append(trial)
        if is_feasible(trial):
            if trial.number not in on_front:
                feasible.append(trial)
        else:
            infeasible.append(trial)
    ref = _reference(study, trials, objectives, directions)
    history = _hv_history(trials, ref, objectives, directions)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    n_feasible = sum(is_feasible(t) for t in complete)
    counts = {
        "complete": len(complete),
        "feasible": n_feasible,
        "front": len(front),
        "infeasible": sum(t.state == TrialState.PRUNED for t in trials) + len(complete) - n_feasible,
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    return ParetoInfo(
        study_name=study.study_name,
        objectives=objectives,
        directions=directions,
        front=front,
        feasible=feasible,
        infeasible=infeasible,
        baseline=baseline,
        values=values,
        counts=counts,
        reference_point=None if ref is None else [float(r * s) for r, s in zip(ref, sign)],
        hypervolume=history[-1][1] if history else 0.0,
        hypervolume_history=history,
    )


def trial_summary(trial: FrozenTrial) -> dict[str, Any]:
    """Point, metrics and status of one trial, as the front table and hover texts show them."""
    return {
        "trial": trial.number,
        "point": dict(trial.user_attrs.get("point") or trial.params),
        "metrics": dict(trial.user_attrs.get("metrics") or {}),
        "status": trial.user_attrs.get("lepton_status", trial.state.name.lower()),
        "reason": trial.user_attrs.get("reason", ""),
        "baseline": bool(trial.user_attrs.get("baseline")),
    }
