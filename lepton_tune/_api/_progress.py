"""Search progress in any output: a live bar on a terminal, plain lines in a log, nothing with ``--quiet``.

A log (CI, ``nohup``, a container's stdout) gets one line per finished trial and, while a trial
runs longer than ``heartbeat_s``, a line every ``heartbeat_s`` seconds, so that it shows the
search moving::

    [  0:42] trial 3  small_cnn bf16 K2x1 b4  accuracy=91.20% latency_p95_ms=1.23 memory_mb=310  ok  12.4 s
    [  1:12]   still running: 30 s into a trial (training small_cnn epoch 3/20)
"""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import TrialRecord, short_label
from lepton_tune.tuning import objectives_of, pareto_trials, study_counts

__all__ = ["ProgressCallback", "trial_line"]

_UNITS = {"accuracy": "{:.2%}", "throughput": "{:.1f}", "memory_mb": "{:.0f}", "cost_per_million": "{:.4f}"}


def _fmt(name: str, value: Any) -> str:
    if value is None:
        return "-"
    return _UNITS.get(name, "{:.2f}").format(value)


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:3d}:{secs:02d}"


def trial_line(trial: FrozenTrial, objectives: list[str]) -> str:
    """One finished trial: number, short point, objectives, status and reason, elapsed seconds.

    Example:
        >>> # trial_line(study.trials[3], ["accuracy", "latency_p95_ms"])
        >>> # 'trial 3  small_cnn bf16 K2x1 b4  accuracy=91.20% latency_p95_ms=1.23  ok  12.4 s'
    """
    record = TrialRecord.of(trial)
    point = record.point or dict(trial.params)
    metrics = record.metrics
    values = "  " + " ".join(f"{name}={_fmt(name, metrics.get(name))}" for name in objectives) if metrics else ""
    status = str(record.status or trial.state.name.lower())
    reason = record.reason or trial.system_attrs.get("fail_reason") or ""
    if reason:
        status += f": {str(reason).strip().splitlines()[0]}"
    if status == "ok" and any(v > 0 for v in trial.constraints.values()):
        status = "ok, misses a budget"
    seconds = trial.duration.total_seconds() if trial.duration is not None else 0.0
    elapsed = f"  {seconds:.1f} s" if seconds >= 0.05 else ""
    mark = " (baseline)" if record.baseline else ""
    label = short_label(point) if point else "-"
    return f"trial {trial.number}{mark}  {label}{values}  {status}{elapsed}"


class ProgressCallback:
    """Optuna callback: the live bar (``bar``) and/or plain lines written to ``lines``.

    The bar shows trials done / budget, elapsed, ETA, feasible count and the best value per
    objective; the lines are :func:`trial_line` plus a "still running" line every
    ``heartbeat_s`` seconds without one.
    """

    def __init__(
        self,
        console: Any,
        total: int | None,
        *,
        bar: bool = True,
        lines: TextIO | None = None,
        heartbeat_s: float = 30.0,
    ) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.total = total
        self.lines = lines
        self.heartbeat_s = heartbeat_s
        self.progress = Progress(
            TextColumn("[bold]trials"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            TextColumn("{task.description}"),
            console=console,
            transient=False,
            disable=not bar,
        )
        self.task = self.progress.add_task("", total=total)
        self.stage = ""
        self._started = self._last_line = self._last_trial = time.monotonic()
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._ticker: threading.Thread | None = None

    def set_total(self, total: int | None) -> None:
        """The trial budget, once the study file is read (``n_trials`` may come from it)."""
        self.total = total
        self.progress.update(self.task, total=total)

    @property
    def silent(self) -> bool:
        """Neither the bar nor lines (``--quiet``): other messages of the search stay quiet too."""
        return bool(self.progress.disable) and self.lines is None

    def __enter__(self) -> ProgressCallback:
        self.progress.start()
        self._started = self._last_line = self._last_trial = time.monotonic()
        if self.lines is not None and self.heartbeat_s > 0:
            self._ticker = threading.Thread(target=self._tick, name="lepton-progress", daemon=True)
            self._ticker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        if self._ticker is not None:
            self._ticker.join(2.0)
        self.progress.stop()

    def _write(self, text: str) -> None:
        if self.lines is None:
            return
        with self._lock:
            now = time.monotonic()
            self._last_line = now
            try:
                self.lines.write(f"[{_clock(now - self._started)}] {text}\n")
                self.lines.flush()
            except (OSError, ValueError):  # a closed or broken log never stops the search
                self.lines = None

    def _tick(self) -> None:
        while not self._done.wait(1.0):
            now = time.monotonic()
            if now - self._last_line >= self.heartbeat_s:
                stage = f" ({self.stage})" if self.stage else ""
                self._write(f"  still running: {now - self._last_trial:.0f} s into a trial{stage}")

    def start_at(self, study: optuna.Study) -> None:
        done = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
        self.progress.update(self.task, completed=done, description=self._describe(study))
        if done:
            self._write(
                f"resuming study {study.study_name!r}: {done} trials finished"
                + (f" of {self.total}" if self.total else "")
            )

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
        self.stage = ""
        self._last_trial = time.monotonic()
        self.progress.update(
            self.task, advance=1 if trial.state != TrialState.FAIL else 0, description=self._describe(study)
        )
        self._write(trial_line(trial, objectives_of(study)))
