"""What the study's parent run shows at a glance: description, front table, best values (pure data).

The tracker logs these at the end of a search: the description as ``mlflow.note.content`` (the
run page's "Description"), the front as a table artifact (``pareto_front.json``, MLflow's
``log_table`` format) and ``best_<objective>`` metrics next to the hypervolume.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from optuna.trial import FrozenTrial

from lepton_tune.front import TrialRecord
from lepton_tune.tracking._record import metric_key, run_name

__all__ = ["best_values", "front_table", "study_note"]

_EXTRA = ("speedup", "memory_ratio", "throughput")


def best_values(front: Sequence[FrozenTrial], objectives: Sequence[str], directions: Sequence[str]) -> dict[str, float]:
    """``best_<objective>``: the best value of each objective on the feasible front (empty front: none).

    Example:
        >>> best_values([], ["accuracy"], ["maximize"])
        {}
    """
    best: dict[str, float] = {}
    for i, (name, direction) in enumerate(zip(objectives, directions)):
        values = [float(t.values[i]) for t in front if t.values is not None]
        if values:
            best[metric_key(f"best_{name}")] = max(values) if direction == "maximize" else min(values)
    return best


def front_table(front: Sequence[FrozenTrial], objectives: Sequence[str], params: Sequence[str]) -> dict[str, list[Any]]:
    """The front as columns (``log_table`` data): trial, run name, objectives, ratios, searched params.

    Example:
        >>> front_table([], ["accuracy"], ["backbone"])["trial"]
        []
    """
    columns: dict[str, list[Any]] = {"trial": [], "run_name": []}
    for name in [*objectives, *(e for e in _EXTRA if e not in objectives), *params]:
        columns.setdefault(name, [])
    for trial in front:
        metrics = TrialRecord.of(trial).metrics or {}
        point = TrialRecord.of(trial).point or trial.params
        columns["trial"].append(trial.number)
        columns["run_name"].append(run_name(trial))
        for i, name in enumerate(objectives):
            columns[name].append(float(trial.values[i]) if trial.values is not None else None)
        for name in _EXTRA:
            if name not in objectives:
                value = metrics.get(name)
                columns[name].append(float(value) if isinstance(value, (int, float)) else None)
        for name in params:
            value = point.get(name)
            columns[name].append(value if value is None or isinstance(value, (int, float, bool)) else str(value))
    return columns


def study_note(
    *,
    study_name: str,
    objectives: Sequence[str],
    directions: Sequence[str],
    searched: Mapping[str, str],
    budgets: Mapping[str, Any],
    counts: Mapping[str, int],
    front: Sequence[FrozenTrial],
) -> str:
    """The parent run's description (markdown): what the study searched and how to read its child runs.

    Example:
        >>> note = study_note(study_name="s", objectives=["accuracy"], directions=["maximize"], searched={},
        ...                   budgets={}, counts={"n_trials": 0}, front=[])
        >>> note.splitlines()[0]
        '**lepton-tune study `s`**: one child run per trial, each a serving layout measured for real on this host.'
    """
    goals = ", ".join(f"{'max' if d == 'maximize' else 'min'} `{o}`" for o, d in zip(objectives, directions))
    lines = [
        f"**lepton-tune study `{study_name}`**: one child run per trial, each a serving layout measured for real "
        "on this host.",
        "",
        f"- **Objectives**: {goals}.",
    ]
    if budgets:
        lines.append(
            "- **Budgets**: "
            + ", ".join(f"`{k}` {v}" for k, v in budgets.items())
            + " (a trial that misses one has a `budget_<metric>` metric > 0 and `feasible=false`)."
        )
    if searched:
        lines.append("- **Searched**: " + "; ".join(f"`{k}` in {v}" for k, v in searched.items()) + ".")
    lines.append(
        f"- **Trials**: {counts.get('n_trials', 0)} finished, {counts.get('n_feasible', 0)} feasible, "
        f"{counts.get('n_failed', 0)} failed; {len(front)} on the Pareto front."
    )
    if front:
        lines.append("- **Front**: " + "; ".join(f"`{run_name(t)}`" for t in front) + ".")
    lines += [
        "",
        "**Reading the child runs**",
        "",
        "- The name says what the point is: `t12 resnet18 int8 ort K2x1 b8` = trial 12, backbone, precision, "
        "runtime, K shards x threads per shard, batch size; `baseline` is your model called in-process as you "
        "would deploy it without lepton-tune; `noisy` means the host was busy while it was measured; "
        "`confirms t5` is a re-measure of trial 5 before export.",
        "- Metrics: the objectives, `speedup` and `memory_ratio` (throughput and memory against the naive "
        "baseline: speedup > 1 is faster, memory_ratio < 1 is lighter), latency percentiles with their "
        "`_spread` over repeats, `<stage>_seconds`; params: every field of the serving point.",
        "- Tags: `pareto=true` marks the feasible front (never a noisy trial or a confirmation), "
        "`feasible`, `lepton_status`, `reason`, `baseline`, `noisy`.",
        "- Saved views (the view menu above the runs table): **lepton-tune: every trial** sorted by "
        f"`{objectives[0] if objectives else 'start time'}` with these columns and trade-off charts, and "
        '**lepton-tune: Pareto front** (`tags.pareto = "true"`). `lepton-tune ui` prints links to both.',
        "- Artifacts here: `pareto_front.json` (the front as a table), the HTML report, `study.json`.",
    ]
    return "\n".join(lines)
