"""Read a study back: counts, the feasible Pareto front, baselines, and the JSON users script against."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import TrialRecord, feasible_front, is_feasible, study_objectives

__all__ = [
    "accuracy_drop",
    "baseline_metrics",
    "baseline_ratios",
    "baseline_trials",
    "in_process_baseline",
    "objectives_of",
    "pareto_trials",
    "point_json",
    "study_counts",
    "study_summary",
]


# The front, feasibility and objective names are read through lepton_tune.front, one module for all.
objectives_of = study_objectives
pareto_trials = feasible_front
_is_feasible = is_feasible


def study_counts(study: optuna.Study) -> dict[str, int]:
    """``complete``, ``feasible``, ``failed``, ``infeasible`` (pruned-infeasible + budgets missed + noisy), ``noisy``;
    ``confirmations`` (re-measures of chosen points before export) are counted apart, in none of the others."""
    every = study.get_trials(deepcopy=False)
    trials = [t for t in every if TrialRecord.of(t).confirms is None]  # a confirmation re-measures a trial
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return {
        "complete": len(complete),
        "feasible": sum(_is_feasible(t) for t in complete),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "infeasible": sum(t.state == TrialState.PRUNED for t in trials) + sum(not _is_feasible(t) for t in complete),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "noisy": sum(bool(TrialRecord.of(t).noisy) for t in complete),
        "confirmations": len(every) - len(trials),
    }


def baseline_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).baseline]


def in_process_baseline(trial: FrozenTrial) -> bool:
    """True for a baseline measured as the user's own in-process call (studies before 0.2 hosted it in the engine)."""
    return TrialRecord.of(trial).baseline_kind == "in-process"


def baseline_metrics(study: optuna.Study, backbone: Any) -> dict[str, float]:
    """The measured metrics of ``backbone``'s baseline (empty if none).

    Preference: the newest quiet in-process one, then a noisy in-process one, then an
    engine-hosted one from a study made before in-process baselines.
    """
    found = [
        t
        for t in baseline_trials(study)
        if t.state == TrialState.COMPLETE and (TrialRecord.of(t).point or {}).get("backbone") == backbone
    ]
    if not found:
        return {}
    best = max(found, key=lambda t: (in_process_baseline(t), not TrialRecord.of(t).noisy, t.number))
    return dict(TrialRecord.of(best).metrics or {})


def accuracy_drop(reference: float, accuracy: float) -> float:
    """Points (0-100 scale) that ``accuracy`` lies below ``reference`` (both 0-1 fractions), rounded to 1e-9.

    Example:
        >>> accuracy_drop(0.95, 0.945)
        0.5
    """
    return round((reference - accuracy) * 100.0, 9)


def baseline_ratios(study: optuna.Study, backbone: Any, metrics: dict[str, float]) -> dict[str, float]:
    """``speedup`` (throughput / the baseline's), ``memory_ratio`` (memory / the baseline's) and
    ``accuracy_drop`` (points of accuracy below the baseline's: the user's own model, fp32 eager, on
    the same images; negative when a point scores higher).

    Example:
        >>> # baseline_ratios(study, "resnet18", {"throughput": 120.0, "memory_mb": 300.0, "accuracy": 0.95})
        >>> # {'speedup': 2.0, 'memory_ratio': 0.75, 'accuracy_drop': 0.5}
    """
    base = baseline_metrics(study, backbone)
    out = {}
    if base.get("accuracy") is not None and metrics.get("accuracy") is not None:
        out["accuracy_drop"] = accuracy_drop(float(base["accuracy"]), float(metrics["accuracy"]))
    if base.get("throughput") and metrics.get("throughput"):
        out["speedup"] = float(metrics["throughput"]) / float(base["throughput"])
    if base.get("memory_mb") and metrics.get("memory_mb"):
        out["memory_ratio"] = float(metrics["memory_mb"]) / float(base["memory_mb"])
    return out


def point_json(trial: FrozenTrial) -> dict[str, Any]:
    """``{"trial", "params", "values", "status", "reason"}``; values hold every measured metric."""
    point = TrialRecord.of(trial).point or dict(trial.params)
    return {
        "trial": trial.number,
        "params": point,
        "values": dict(TrialRecord.of(trial).metrics or {}),
        "status": (TrialRecord.of(trial).status or trial.state.name.lower()),
        "reason": TrialRecord.of(trial).reason,
        **(
            {
                "baseline_kind": (TrialRecord.of(trial).baseline_kind or "engine-hosted (older study)"),
                "baseline_form": TrialRecord.of(trial).baseline_form,
            }
            if TrialRecord.of(trial).baseline
            else {}
        ),
        **({"noisy": True} if TrialRecord.of(trial).noisy else {}),
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
