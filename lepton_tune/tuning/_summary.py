"""Read a study back: counts, the feasible Pareto front, baselines, and the JSON users script against."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

__all__ = ["accuracy_drop", "baseline_metrics", "baseline_ratios", "baseline_trials", "in_process_baseline", "objectives_of", "pareto_trials", "point_json", "study_counts", "study_summary"]


def objectives_of(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives") or study.metric_names
    return list(names) if names else [f"objective_{i}" for i in range(len(study.directions))]


def _is_feasible(trial: FrozenTrial) -> bool:
    return trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())


def study_counts(study: optuna.Study) -> dict[str, int]:
    """``complete``, ``feasible``, ``failed``, ``infeasible`` (pruned-infeasible + budgets missed + noisy), ``noisy``;
    ``confirmations`` (re-measures of chosen points before export) are counted apart, in none of the others."""
    every = study.get_trials(deepcopy=False)
    trials = [t for t in every if t.user_attrs.get("confirms") is None]  # a confirmation re-measures a trial
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    return {
        "complete": len(complete),
        "feasible": sum(_is_feasible(t) for t in complete),
        "failed": sum(t.state == TrialState.FAIL for t in trials),
        "infeasible": sum(t.state == TrialState.PRUNED for t in trials) + sum(not _is_feasible(t) for t in complete),
        "running": sum(t.state == TrialState.RUNNING for t in trials),
        "noisy": sum(bool(t.user_attrs.get("noisy")) for t in complete),
        "confirmations": len(every) - len(trials),
    }


def pareto_trials(study: optuna.Study) -> list[FrozenTrial]:
    """The feasible Pareto front: :func:`lepton_tune.front.feasible_front` (one definition for every package).

    Never a noisy trial, a confirmation re-measure or a replayed duplicate.
    """
    from lepton_tune.front import feasible_front

    return feasible_front(study)


def baseline_trials(study: optuna.Study) -> list[FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if t.user_attrs.get("baseline")]


def in_process_baseline(trial: FrozenTrial) -> bool:
    """True for a baseline measured as the user's own in-process call (studies before 0.2 hosted it in the engine)."""
    return trial.user_attrs.get("baseline_kind") == "in-process"


def baseline_metrics(study: optuna.Study, backbone: Any) -> dict[str, float]:
    """The measured metrics of ``backbone``'s baseline (empty if none).

    Preference: the newest quiet in-process one, then a noisy in-process one, then an
    engine-hosted one from a study made before in-process baselines.
    """
    found = [t for t in baseline_trials(study)
             if t.state == TrialState.COMPLETE and (t.user_attrs.get("point") or {}).get("backbone") == backbone]
    if not found:
        return {}
    best = max(found, key=lambda t: (in_process_baseline(t), not t.user_attrs.get("noisy"), t.number))
    return dict(best.user_attrs.get("metrics") or {})


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
    point = trial.user_attrs.get("point") or dict(trial.params)
    return {
        "trial": trial.number,
        "params": point,
        "values": dict(trial.user_attrs.get("metrics") or {}),
        "status": trial.user_attrs.get("lepton_status", trial.state.name.lower()),
        "reason": trial.user_attrs.get("reason", ""),
        **({"baseline_kind": trial.user_attrs.get("baseline_kind", "engine-hosted (older study)"),
            "baseline_form": trial.user_attrs.get("baseline_form")} if trial.user_attrs.get("baseline") else {}),
        **({"noisy": True} if trial.user_attrs.get("noisy") else {}),
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
