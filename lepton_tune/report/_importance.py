"""Parameter importances per objective (Optuna's default PedAnova evaluator), data then figure."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import NamedTuple

import optuna
import plotly.graph_objects as go
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import TrialRecord, metric_title, param_name
from lepton_tune.report._pareto import study_directions, study_objectives

__all__ = ["ImportanceInfo", "importance_info", "importance_target", "plot_importances"]


class ImportanceInfo(NamedTuple):
    """``importances[objective][param]`` (normalised to sum 1 per objective), and why one is missing."""

    objectives: list[str]
    importances: dict[str, dict[str, float]]
    notes: dict[str, str]


def importance_target(index: int, direction: str) -> Callable[[FrozenTrial], float]:
    """The target for objective ``index``: the evaluator ranks parameters for LOW target values, so a
    maximize objective is negated.

    Example:
        >>> t = optuna.trial.create_trial(values=[0.9, 3.0])
        >>> importance_target(0, "maximize")(t), importance_target(1, "minimize")(t)
        (-0.9, 3.0)
    """
    sign = -1.0 if direction == "maximize" else 1.0
    return lambda trial: sign * float(trial.values[index])


def importance_info(study: optuna.Study, *, params: list[str] | None = None) -> ImportanceInfo:
    """Importance of each sampled parameter (``trial.params``) for each objective, on COMPLETE trials.

    ``params`` limits it to the parameters that varied (default: every sampled one). Noisy trials
    and confirmation re-measures are left out.

    Example:
        >>> # importance_info(study).importances["accuracy"]  # {"backbone": 0.7, "batch_size": 0.3}
    """
    objectives, directions = study_objectives(study), study_directions(study)
    complete = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not TrialRecord.of(t).noisy and TrialRecord.of(t).confirms is None
    ]
    common = set.intersection(*(set(t.params) for t in complete)) if complete else set()
    names = sorted(k for k in common if params is None or k in params)
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no "new study created in memory" line
    try:
        measured = optuna.create_study(directions=study.directions)  # in memory: only the trials that count
    finally:
        optuna.logging.set_verbosity(verbosity)
    measured.add_trials(complete)
    importances: dict[str, dict[str, float]] = {}
    notes: dict[str, str] = {}
    for i, (name, direction) in enumerate(zip(objectives, directions)):
        if len(complete) < 2:
            notes[name] = f"needs at least 2 complete trials, got {len(complete)}"
            continue
        if not names:
            notes[name] = "no searched parameter varied"
            continue
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                result = optuna.importance.get_param_importances(
                    measured, params=names or None, target=importance_target(i, direction)
                )
        except (ValueError, RuntimeError) as exc:  # too few trials, no parameter in common, ...
            notes[name] = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            continue
        if not result:
            notes[name] = "no parameter varies across the complete trials"
            continue
        importances[name] = {k: float(v) for k, v in result.items()}
    return ImportanceInfo(objectives, importances, notes)


def plot_importances(info: ImportanceInfo) -> go.Figure:
    """Horizontal bars: one group per parameter, one bar per objective."""
    fig = go.Figure()
    params = sorted({p for imp in info.importances.values() for p in imp})
    for name in info.objectives:
        if name not in info.importances:
            continue
        fig.add_trace(
            go.Bar(
                y=[param_name(p) for p in params],
                x=[info.importances[name].get(p, 0.0) for p in params],
                orientation="h",
                name=metric_title(name),
            )
        )
    notes = "; ".join(f"{k}: {v}" for k, v in info.notes.items())
    fig.update_layout(
        title="Parameter importance per objective" + (f" (skipped {notes})" if notes else ""),
        xaxis_title="importance (PedAnova, normalised)",
        barmode="group",
        height=max(300, 60 + 40 * len(params) * max(1, len(info.importances))),
    )
    return fig
