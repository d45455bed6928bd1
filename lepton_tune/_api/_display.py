"""Terminal output for search/show: the Pareto-front table and the recommended picks in words."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import (
    METRIC_NAMES,
    Pick,
    TrialRecord,
    by_first_objective,
    export_command,
    format_metric,
    format_ratio,
    recommended_picks,
    short_label,
    study_directions,
    study_objectives,
    with_first,
)
from lepton_tune.tuning import baseline_ratios, baseline_trials, in_process_baseline, pareto_trials

__all__ = ["front_table", "next_steps", "pick_lines"]


def front_table(study: optuna.Study, picks: list[Pick] | None = None) -> Any:
    """The feasible Pareto front, then each backbone's baseline, best first on the first objective.

    Each point in its short form, the objectives with units, speedup and memory ratio against the
    in-process baseline (the user's own model called in-process, ``serial`` or ``concurrent``,
    whichever served the load faster; a study made before that rule says so in the title), and
    the recommended picks marked.
    """
    from rich.table import Table

    baselines = [t for t in baseline_trials(study) if t.state == TrialState.COMPLETE]
    older = bool(baselines) and not any(in_process_baseline(t) for t in baselines)
    against = "vs engine-hosted baseline (older study)" if older else "vs the in-process baseline"
    objectives, directions = study_objectives(study), study_directions(study)
    columns = [*zip(objectives, directions)] + [(m, "") for m in ("throughput",) if m not in objectives]
    if "accuracy_drop" not in objectives and _has_drop(study):  # shown right after accuracy (points vs your model)
        at = next((i + 1 for i, (m, _) in enumerate(columns) if m == "accuracy"), len(columns))
        columns.insert(at, ("accuracy_drop", ""))
    metrics = [m for m, _ in columns]
    roles = {p.trial.number: p.roles for p in (recommended_picks(study) if picks is None else picks)}
    table = Table(
        title=f"Pareto front of {study.study_name!r} (feasible points, best {METRIC_NAMES.get(objectives[0], objectives[0]) if objectives else ''} "
        f"first; ratios {against})"
    )
    arrows = {"maximize": " ↑", "minimize": " ↓"}
    table.add_column("trial", justify="right")
    table.add_column("point", justify="left")
    for name, direction in columns:
        table.add_column(METRIC_NAMES.get(name, name) + arrows.get(direction, ""), justify="right")
    table.add_column("speedup", justify="right")
    table.add_column("mem x", justify="right")
    table.add_column("note", justify="left")
    front = pareto_trials(study)
    shown = {t.number for t in front}
    rows = by_first_objective(front + [t for t in baselines if t.number not in shown], objectives, directions)
    for trial in rows:
        point, m = TrialRecord.of(trial).point, TrialRecord.of(trial).metrics
        ratios = {k: m[k] for k in ("speedup", "memory_ratio") if k in m} or baseline_ratios(
            study, point.get("backbone"), m
        )
        note = _mark(trial)
        if trial.number in roles:
            note = "; ".join(filter(None, ["pick: " + ", ".join(roles[trial.number]), note]))
        table.add_row(
            str(trial.number),
            short_label(point) if point else "-",
            *[format_metric(k, m.get(k)) for k in metrics],
            format_ratio(ratios.get("speedup")),
            format_ratio(ratios.get("memory_ratio")),
            note,
            style="bold" if trial.number in roles else None,
        )
    return table


def _has_drop(study: optuna.Study) -> bool:
    """Whether trials carry ``accuracy_drop`` (points below the user's own model, measured by the baseline)."""
    return any("accuracy_drop" in (t.user_attrs.get("metrics") or {}) for t in study.get_trials(deepcopy=False))


def baseline_on_front(study: optuna.Study) -> list[int]:
    """Numbers of the baseline trials that stand on the feasible front."""
    from lepton_tune.front import feasible_front

    return [t.number for t in feasible_front(study) if TrialRecord.of(t).baseline]


def pick_lines(
    picks: list[Pick], objectives: list[str], location: str, *, baseline_front: list[int] | None = None
) -> list[str]:
    """The recommended picks in words: numbers (confirmed, with the search's beside them), ratios, the export command.

    ``baseline_front``: the baseline trials on the front; when there is no pick they are the whole
    front, and the honest answer is the user's own in-process call.

    Example:
        >>> # pick_lines(recommended_picks(study), ["accuracy", "latency_p95_ms"], "--run-dir runs")[0]
        >>> # 'trial 5  small_cnn int8 K2x1 b16 pipe  (knee, lowest p95 latency)'
    """
    if not picks and baseline_front:
        trials = ", ".join(map(str, baseline_front))
        return [
            (
                f"No searched layout beats your in-process call (baseline trial {trials}) on any objective: it is "
                "the whole front. Serve the model as it is, or widen the search (precision, batch size, runtime)."
            )
        ]
    if not picks:
        return ["No recommended pick yet: the front is empty."]
    lines = []
    shown = list(objectives) + [m for m in ("throughput",) if m not in objectives]
    for pick in picks:
        lines.append(f"trial {pick.trial.number}  {pick.label}  ({', '.join(pick.roles)})")
        numbers = ", ".join(
            f"{METRIC_NAMES.get(k, k)} {with_first(k, pick.metrics.get(k), pick.first_metrics.get(k))}"
            for k in shown
            if pick.metrics.get(k) is not None
        )
        ratios = (
            (
                f"; {format_ratio(pick.metrics.get('speedup'))} the baseline's throughput, "
                f"{format_ratio(pick.metrics.get('memory_ratio'))} its memory"
            )
            if "speedup" in pick.metrics
            else ""
        )
        lines.append(f"    {numbers}{ratios}")
        lines.append(
            f"    confirmed in a fresh process (trial {pick.confirmation.number})"
            if pick.confirmation is not None
            else "    not yet confirmed — export confirms it"
        )
        lines.append(f"    {export_command(pick.trial.number, location)}")
    return lines


def _mark(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    marks = []
    if attrs.get("baseline"):
        form = attrs.get("baseline_form")
        marks.append(f"baseline, in-process {form}" if in_process_baseline(trial) else "baseline, engine-hosted")
    if attrs.get("noisy"):
        marks.append("noisy")
    return "; ".join(marks)


def next_steps(location: str, run_dir: str | None) -> str:
    ui = f"  lepton-tune ui --run-dir {run_dir}\n" if run_dir else ""
    return (
        f"Look further:\n  lepton-tune show {location}\n  lepton-tune report {location}\n{ui}"
        f"  lepton-tune export {location} --require 'accuracy>=0.95' --prefer latency_p95_ms --out bundle/"
    )
