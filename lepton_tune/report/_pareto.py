"""The data behind the report's Pareto figures: front, infeasible points, baselines, hypervolume.

Everything here reads the study only; figures are drawn from :class:`ParetoInfo` elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import (
    TrialRecord,
    eligible,
    feasible_front,
    hypervolume,
    hypervolume_share,
    ideal_point,
    is_feasible,
    objective_values,
    study_directions,
    study_hypervolume,
    study_objectives,
    study_reference,
    to_loss,
)

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
        counts: ``complete``, ``feasible``, ``front``, ``infeasible`` (PRUNED + budgets missed), ``noisy``,
            ``failed``, ``running`` (confirmations excluded), then ``confirmations``.
        reference_point: the hypervolume reference, in objective units (see ``reference_point``).
        hypervolume: hypervolume of the front at the end.
        hypervolume_history: ``(trial number, hypervolume)`` after each finished trial, all with
            the final reference point (so the curve never decreases).
        noisy: trials measured on a busy host (never on the front).
        confirmations: re-measures of a chosen point (``confirms``), never on the front.
        ideal_point: the best value of each objective on the front (objective units).
        hypervolume_share: ``hypervolume`` over the volume of the box between the reference point and
            the ideal point (1.0: one point is best on everything); None without a front.
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
    noisy: Sequence[FrozenTrial] = ()
    confirmations: Sequence[FrozenTrial] = ()
    ideal_point: list[float] | None = None
    hypervolume_share: float | None = None


def _hv_history(
    trials: list[FrozenTrial], ref: np.ndarray | None, objectives: list[str], directions: list[str]
) -> list[tuple[int, float]]:
    history: list[tuple[int, float]] = []
    points: list[list[float]] = []
    current = 0.0
    for trial in sorted(trials, key=lambda t: t.number):
        if not trial.state.is_finished() or TrialRecord.of(trial).confirms is not None:
            continue
        values = objective_values(trial, objectives) if eligible(trial) else None
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
    values, groups = _grouped(trials, objectives, {t.number for t in front})
    ref = study_reference(study, trials)
    history = _hv_history(trials, ref, objectives, directions)
    sign = [-1.0 if d == "maximize" else 1.0 for d in directions]
    volume = history[-1][1] if history else 0.0
    reference = None if ref is None else [float(r * s) for r, s in zip(ref, sign)]
    ideal = ideal_point([values[t.number] for t in front if t.number in values], directions)
    return ParetoInfo(
        study_name=study.study_name,
        objectives=objectives,
        directions=directions,
        front=front,
        feasible=groups["feasible"],
        infeasible=groups["infeasible"],
        baseline=groups["baseline"],
        values=values,
        counts=_counts(trials, len(front)),
        reference_point=reference,
        hypervolume=volume,
        hypervolume_history=history,
        noisy=groups["noisy"],
        confirmations=groups["confirmations"],
        ideal_point=ideal,
        hypervolume_share=hypervolume_share(volume, ideal, reference, directions),
    )


def _grouped(
    trials: list[FrozenTrial], objectives: list[str], on_front: set[int]
) -> tuple[dict[int, list[float]], dict[str, list[FrozenTrial]]]:
    """Objective values by trial number, and the finished trials off the front by kind."""
    values: dict[int, list[float]] = {}
    groups: dict[str, list[FrozenTrial]] = {
        k: [] for k in ("feasible", "infeasible", "baseline", "noisy", "confirmations")
    }
    for trial in trials:
        vals = objective_values(trial, objectives)
        if vals is None or trial.state not in (TrialState.COMPLETE, TrialState.PRUNED):
            continue
        values[trial.number] = vals
        record = TrialRecord.of(trial)
        if record.baseline:
            groups["baseline"].append(trial)
        if record.confirms is not None:
            groups["confirmations"].append(trial)
        elif record.noisy:
            groups["noisy"].append(trial)
        elif is_feasible(trial):
            if trial.number not in on_front:
                groups["feasible"].append(trial)
        else:
            groups["infeasible"].append(trial)
    return values, groups


def _counts(trials: list[FrozenTrial], front: int) -> dict[str, int]:
    """Trials by outcome; confirmations (re-measures of chosen points) are counted apart."""
    measured = [t for t in trials if TrialRecord.of(t).confirms is None]
    complete = [t for t in measured if t.state == TrialState.COMPLETE]
    noisy = sum(TrialRecord.of(t).noisy for t in complete)
    feasible = sum(is_feasible(t) and not TrialRecord.of(t).noisy for t in complete)
    return {
        "complete": len(complete),
        "feasible": feasible,
        "front": front,
        "infeasible": sum(t.state == TrialState.PRUNED for t in measured) + len(complete) - feasible - noisy,
        "noisy": noisy,
        "failed": sum(t.state == TrialState.FAIL for t in measured),
        "running": sum(t.state == TrialState.RUNNING for t in measured),
        "confirmations": len(trials) - len(measured),
    }


def trial_summary(trial: FrozenTrial) -> dict[str, Any]:
    """Point, metrics and status of one trial, as the front table and hover texts show them."""
    return {
        "trial": trial.number,
        "point": dict(TrialRecord.of(trial).point or trial.params),
        "metrics": dict(TrialRecord.of(trial).metrics or {}),
        "status": (TrialRecord.of(trial).status or trial.state.name.lower()),
        "reason": TrialRecord.of(trial).reason,
        "baseline": bool(TrialRecord.of(trial).baseline),
    }
