"""Read a study back: counts, the feasible Pareto front, baselines, and the JSON users script against."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["baseline_trials", "objectives_of", "pareto_trials", "point_json", "study_counts", "study_summary"]


def objectives_of(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives") or study.metric_names
    return list(names) if names else [f"objective_{i}" for i in range(len(study.directions))]


def _is_feasible(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def study_counts(study: optuna.Study) -> dict[str, int]:
    """``complete``, ``feasible``, ``failed``, ``infeasible`` (pruned-infeasible + budgets missed)."""
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return {
        "complete": len(complete),
        "feasible": sum(_is_feasible(t) for t in complete),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "infeasible": sum(t.state == TrialState.PRUNED for t in trials) + sum(not _is_feasible(t) for t in complete),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
    }


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front (Optuna's ``best_trials`` ignores constraint-violating trials)."""
    if not any(t.state == TrialState.COMPLETE for t in study.get_trials(deepcopy=False)):
        return []
    # A replayed duplicate (same point as an earlier trial) is the same point: list it once.
    return sorted((t for t in study.best_trials if t.user_attrs.get("duplicate_of") is None), key=lambda t: t.number)


def baseline_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]


def point_json(trial: FrozenTrial) -> dict[str, Any]:
    """``{"trial", "params", "values", "status", "reason"}``; values hold every measured metric."""
    point = trial.user_attrs.get("point") or dict(trial.params)
    return {
        "trial": trial.number,
        "params": point,
        "values": dict(trial.user_attrs.get("metrics") or {}),
        "status": trial.user_attrs.get("lepton_status", trial.state.name.lower()),
        "reason": trial.user_attrs.get("reason", ""),
    }


def study_summary(study: optuna.Study, *, storage: str) -> dict[str, Any]:
    """The JSON object ``search --json`` and ``show --json`` print."""
    from lepton_tune.tuning._storage import redact_url

    return {
        "study_name": study.study_name,
        "storage": redact_url(storage),
        "objectives": objectives_of(study),
        "directions": [d.name.lower() for d in study.directions],
        "budgets": study.user_attrs.get("budgets", {}),
        "counts": study_counts(study),
        "baseline": [point_json(t) for t in baseline_trials(study)],
        "pareto": [point_json(t) for t in pareto_trials(study)],
    }
