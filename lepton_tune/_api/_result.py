"""``SearchResult`` and ``Point``: a finished (or reloaded) study as typed Python objects.

Everything here reads the study through ``lepton_tune.front`` and ``lepton_tune.tuning``, like the
CLI's ``show`` and ``export``: the front, the picks and the selection mean the same in both.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import (
    TrialRecord,
    by_first_objective,
    confirmation_for,
    feasible_front,
    recommended_picks,
    short_label,
    study_directions,
    study_objectives,
)
from lepton_tune.tuning import (
    baseline_trials,
    finished_count,
    in_process_baseline,
    select_trial,
    study_summary,
)

if TYPE_CHECKING:
    from lepton_tune._api._export import ExportResult

__all__ = ["Point", "SearchResult"]

_SHOWN = ("accuracy", "latency_p95_ms", "throughput", "memory_mb", "speedup")


@dataclass(frozen=True)
class Point:
    """One measured point of a study.

    Attributes:
        trial: the trial number (what ``export(trial=...)`` and ``lepton-tune export --trial`` take).
        label: the short point form, e.g. ``small_cnn int8 K2x1 b16``.
        point: the full point (backbone, precision, runtime, layout fields).
        metrics: the numbers to trust: the confirmation's (a re-measure in a fresh process) when
            there is one, else the search's.
        first_metrics: the search's own measurement.
        confirmed_by: the confirmation trial, if the point was confirmed.
        roles: why it is a recommended pick (``knee``, ``best accuracy``, ...), else empty.
        reason: why :meth:`SearchResult.select` chose it ("" otherwise).
    """

    trial: int
    label: str
    point: dict[str, Any]
    metrics: dict[str, Any]
    first_metrics: dict[str, Any]
    confirmed_by: int | None = None
    baseline: bool = False
    roles: tuple[str, ...] = ()
    reason: str = ""
    record: TrialRecord = field(default_factory=TrialRecord, repr=False, compare=False)

    @classmethod
    def of(cls, study: optuna.Study, trial: FrozenTrial, *, roles: tuple[str, ...] = (), reason: str = "") -> Point:
        record = TrialRecord.of(trial)
        confirmation = confirmation_for(study, trial.number)
        metrics = TrialRecord.of(confirmation).metrics if confirmation is not None else record.metrics
        return cls(
            trial.number,
            short_label(record.point or dict(trial.params)),
            record.point or dict(trial.params),
            dict(metrics),
            dict(record.metrics),
            None if confirmation is None else confirmation.number,
            record.baseline,
            roles,
            reason,
            record,
        )

    def _shown(self) -> str:
        return ", ".join(f"{k}={self.metrics[k]:.4g}" for k in _SHOWN if isinstance(self.metrics.get(k), (int, float)))

    def __str__(self) -> str:
        return f"trial {self.trial} {self.label}: {self._shown()}"

    def __repr__(self) -> str:
        extra = ", baseline" if self.baseline else ", confirmed" if self.confirmed_by is not None else ""
        roles = f", roles={list(self.roles)}" if self.roles else ""
        return f"Point(trial={self.trial}, {self.label!r}, {self._shown()}{extra}{roles})"


@dataclass
class SearchResult:
    """A study on this host: its front, recommended picks, baselines; export and report from it.

    Returned by :func:`lepton_tune.search` and :func:`lepton_tune.load_study`; ``study`` is the
    Optuna study itself for anything this class does not cover.
    """

    study: optuna.Study
    storage_url: str = field(repr=False)
    run_dir: Path
    location: str = ""
    report_path: Path | None = None
    seconds: float = 0.0
    storage_given: bool = False

    @property
    def pareto(self) -> list[Point]:
        """The feasible Pareto front (never noisy trials or confirmations), best first objective first."""
        front = by_first_objective(feasible_front(self.study), self.objectives, study_directions(self.study))
        return [Point.of(self.study, t) for t in front]

    @property
    def picks(self) -> list[Point]:
        """The recommended picks: the knee of the front, then the best point on each objective."""
        return [Point.of(self.study, p.trial, roles=tuple(p.roles)) for p in recommended_picks(self.study)]

    @property
    def objectives(self) -> list[str]:
        return study_objectives(self.study)

    @property
    def n_trials(self) -> int:
        """Finished trials that count toward ``n_trials`` (confirmations do not)."""
        return finished_count(self.study)

    def trials(self, *, states: tuple[TrialState, ...] | None = None) -> list[Point]:
        """Every trial (or those in ``states``) as points, confirmations included."""
        return [Point.of(self.study, t) for t in self.study.get_trials(deepcopy=False, states=states)]

    def baseline(self, backbone: str) -> Point | None:
        """The user's own in-process call of ``backbone``: the reference of every speedup (None if absent)."""
        found = [
            t
            for t in baseline_trials(self.study)
            if t.state == TrialState.COMPLETE and TrialRecord.of(t).backbone == backbone
        ]
        if not found:
            return None
        best = max(found, key=lambda t: (in_process_baseline(t), not TrialRecord.of(t).noisy, t.number))
        return Point.of(self.study, best)

    def select(
        self, require: list[str] | str | None = None, prefer: str | None = None, *, trial: int | None = None
    ) -> Point:
        """The point ``export`` would choose: ``trial``, or the front points meeting every ``require``
        (e.g. ``"accuracy>=0.97"``), best on ``prefer`` (an objective, or ``"knee"``, the default).

        Raises:
            SelectionError: no front point meets the limits (the message names the closest ones).
        """
        requires = [require] if isinstance(require, str) else list(require or [])
        chosen = select_trial(self.study, requires=requires, prefer=prefer, trial_number=trial)
        return Point.of(self.study, chosen.trial, reason=chosen.reason)

    def export(
        self,
        path: str | os.PathLike[str],
        *,
        require: list[str] | str | None = None,
        prefer: str | None = None,
        trial: int | None = None,
        confirm: bool = True,
        force: bool = False,
        trust_code: bool | None = None,
        register: str | None = None,
        alias: str | None = None,
        tracking_uri: str | None = None,
        console: Any = None,
    ) -> ExportResult:
        """Write the chosen point as a bundle (what ``lepton-tune export`` does); see :meth:`select`.

        The point is re-measured in a fresh process first unless ``confirm=False``, and the bundle
        records that confirmation. ``register`` also registers it in the MLflow Model Registry.
        """
        from lepton_tune._api._export import export_point

        requires = [require] if isinstance(require, str) else list(require or [])
        return export_point(
            self.study,
            self.storage_url,
            self.run_dir,
            path,
            require=requires,
            prefer=prefer,
            trial=trial,
            confirm=confirm,
            force=force,
            trust_code=trust_code,
            register=register,
            alias=alias,
            tracking_uri=tracking_uri,
            console=console,
        )

    def report(self, path: str | os.PathLike[str] | None = None) -> Path:
        """Write the self-contained HTML decision report (default ``<run_dir>/report-<study>.html``)."""
        from lepton_tune.report import write_report

        target = Path(path) if path is not None else self.run_dir / f"report-{self.study.study_name}.html"
        return Path(write_report(self.study, target, location=self.location or f"--run-dir {self.run_dir}"))

    def summary(self) -> dict[str, Any]:
        """The JSON object ``lepton-tune search --json`` prints (password in the storage URL hidden)."""
        return study_summary(self.study, storage=self.storage_url)

    def print(self, console: Any = None) -> None:
        """Print what ``lepton-tune search`` prints at the end: the front table, the picks, next steps."""
        from lepton_tune._api._display import baseline_on_front, front_table, next_steps, pick_lines

        if console is None:
            from rich.console import Console

            console = Console(stderr=True)
        picks = recommended_picks(self.study)
        console.print(front_table(self.study, picks))
        console.print("Recommended picks (the knee of the front, then the best on each objective):", highlight=False)
        location = self.location or f"--run-dir {self.run_dir}"
        for line in pick_lines(
            picks, study_objectives(self.study), location, baseline_front=baseline_on_front(self.study)
        ):
            console.print(line, markup=False, highlight=False)
        console.print(f"{finished_count(self.study)} trials in the study; this run took {self.seconds:.0f} s.")
        if self.report_path:
            console.print(f"Report: {self.report_path}")
        console.print(next_steps(location, None if self.storage_given else str(self.run_dir)))

    def __repr__(self) -> str:
        return f"SearchResult(study={self.study.study_name!r}, trials={self.n_trials}, front={self.pareto})"
