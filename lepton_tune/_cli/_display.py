"""Terminal output for search/show: a live progress line and the Pareto-front table (rich, on stderr)."""

from __future__ import annotations

from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.tuning import (
    baseline_ratios,
    baseline_trials,
    in_process_baseline,
    objectives_of,
    pareto_trials,
    study_counts,
)

__all__ = ["ProgressCallback", "front_table", "next_steps"]

_UNITS = {"accuracy": "{:.2%}", "throughput": "{:.1f}", "memory_mb": "{:.0f}", "cost_per_million": "{:.4f}"}


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "-"
    return _UNITS.get(name, "{:.2f}").format(value)


class ProgressCallback:
    """Optuna callback drawing trials done / budget, elapsed, ETA, feasible count, best per objective."""

    def __init__(self, console: Any, total: int | None, *, enabled: bool = True) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = total
        self.enabled = enabled
        self.progress = Progress(TextColumn("[bold]trials"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                                 TextColumn("eta"), TimeRemainingColumn(), TextColumn("{task.description}"),
                                 console=console, transient=False, disable=not enabled)
        self.task = self.progress.add_task("", total=total)
        self.stage = ""

    def __enter__(self) -> ProgressCallback:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start_at(self, study: optuna.Study) -> None:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        self.progress.update(self.task, completed=done, description=self._describe(study))

    def training(self, event: dict[str, Any]) -> None:
        """Progress hook for model training (epoch lines)."""
        if "epoch" in event:
            self.stage = f"training {event.get('backbone', '')} epoch {event['epoch']}/{event.get('epochs', '?')}"
            self.progress.update(self.task, description=self.stage)

    def _describe(self, study: optuna.Study) -> str:
        counts = study_counts(study)
        best = []
        front = pareto_trials(study)
        for i, (name, direction) in enumerate(zip(objectives_of(study), study.directions)):
            values = [t.values[i] for t in front if t.values]
            if values:
                pick = max(values) if direction == optuna.study.StudyDirection.MAXIMIZE else min(values)
                best.append(f"{name}={_fmt(name, pick)}")
        return f"feasible {counts['feasible']}  best {' '.join(best) or '-'}"

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self.progress.update(self.task, advance=1 if trial.state != TrialState.FAIL else 0,
                             description=self._describe(study))


def front_table(study: optuna.Study) -> Any:
    """The feasible Pareto front, then each backbone's baseline, with speedup and memory ratio against it.

    The baseline is the user's own model called in-process (``in-process serial`` or ``concurrent``,
    whichever served the load faster); a study made before that rule says so in the title.
    """
    from rich.table import Table

    baselines = [t for t in baseline_trials(study) if t.state == TrialState.COMPLETE]
    older = bool(baselines) and not any(in_process_baseline(t) for t in baselines)
    against = "vs engine-hosted baseline (older study)" if older else "vs the in-process baseline"
    metrics = ["accuracy", "latency_p50_ms", "latency_p95_ms", "throughput", "memory_mb", "cost_per_million"]
    table = Table(title=f"Pareto front of {study.study_name!r} (feasible points; ratios {against})")
    for col in ["trial", "backbone", "prec", "runtime", "K", "mode", "thr", "pin", "batch", *metrics, "speedup", "mem x"]:
        table.add_column(col, justify="right")
    front = pareto_trials(study)
    shown = {t.number for t in front}
    rows = front + [t for t in baselines if t.number not in shown]
    for trial in rows:
        point, m = trial.user_attrs.get("point", {}), trial.user_attrs.get("metrics", {})
        ratios = baseline_ratios(study, point.get("backbone"), m)
        speed, mem = ratios.get("speedup"), ratios.get("memory_ratio")
        table.add_row(f"{trial.number}{_mark(trial)}", str(point.get("backbone")), str(point.get("precision")),
                      _runtime_text(point), str(point.get("shards")), str(point.get("mode")), str(point.get("threads_per_shard")),
                      "y" if point.get("pin") else "n", str(point.get("batch_size")),
                      *[_fmt(k, m.get(k)) for k in metrics],
                      f"{speed:.2f}x" if speed else "-", f"{mem:.2f}x" if mem else "-")
    return table


def _mark(trial: FrozenTrial) -> str:
    attrs = trial.user_attrs
    marks = []
    if attrs.get("baseline"):
        form = attrs.get("baseline_form")
        marks.append(f"baseline, in-process {form}" if in_process_baseline(trial) else "baseline, engine-hosted")
    if attrs.get("noisy"):
        marks.append("noisy")
    return f" ({'; '.join(marks)})" if marks else ""


def _runtime_text(point: dict[str, Any]) -> str:
    """``eager``, ``compile``, ``ort``; ``/thread`` when the shards are threads of one process."""
    text = {"onnxruntime": "ort"}.get(point.get("runtime", "eager"), str(point.get("runtime", "eager")))
    return f"{text}/thread" if point.get("isolation") == "thread" else text


def next_steps(location: str, run_dir: str | None) -> str:
    ui = f"  lepton-tune ui --run-dir {run_dir}\n" if run_dir else ""
    return (f"Look further:\n  lepton-tune show {location}\n  lepton-tune report {location}\n{ui}"
            f"  lepton-tune export {location} --require 'accuracy>=0.95' --prefer latency_p95_ms --out bundle/")
