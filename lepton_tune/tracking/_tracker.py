"""``MLflowTracker``: a study's parent run, one nested child run per finished trial, Pareto tags."""

from __future__ import annotations

import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import TrialRecord
from lepton_tune.tracking._guard import TrackingGuard
from lepton_tune.tracking._parent import best_values, front_table, study_note
from lepton_tune.tracking._record import child_record, metric_key, run_status, study_tags
from lepton_tune.tracking._redact import redact_url
from lepton_tune.tracking._store import ensure_tracking_store, sqlite_path
from lepton_tune.tracking._views import StudyViews, experiment_tags

if TYPE_CHECKING:
    from mlflow import MlflowClient

__all__ = ["MLflowTracker"]

_PARENT_TAG = "mlflow.parentRunId"


def _ms(moment: Any) -> int | None:
    return int(moment.timestamp() * 1000) if moment is not None else None


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


class MLflowTracker:
    """Log a study to MLflow as an Optuna callback; never raises into the study.

    One experiment per study (named after it), one parent run per study (tagged
    ``lepton.role=study`` and found again when the study resumes), one nested child run
    ``trial-<number>`` per finished trial, and the feasible front's hypervolume on the parent after
    each trial. Any MLflow error warns once (:class:`TrackingWarning`) and is otherwise swallowed.

    Args:
        tracking_uri: MLflow tracking URI (``sqlite:///...`` or ``http(s)://...``).
        study_name: the study, also the experiment's name.
        run_dir: run directory; a SQLite store puts the experiment's artifacts in ``run_dir/mlartifacts``.
        redact: applied to every string sent to MLflow or shown in a warning (hides URL passwords).

    Example:
        >>> # tracker = MLflowTracker(default_tracking_uri(run_dir), study.study_name, run_dir=run_dir)
        >>> # tracker.start(study)
        >>> # study.optimize(objective, n_trials=10, callbacks=[tracker])
        >>> # tracker.finish(study, report_path=write_report(study, run_dir / "report.html"))
    """

    def __init__(
        self,
        tracking_uri: str,
        study_name: str,
        *,
        run_dir: str | os.PathLike[str] | None = None,
        redact: Callable[[str], str] | None = None,
    ) -> None:
        self.tracking_uri = tracking_uri
        self.study_name = study_name
        self.run_dir = Path(run_dir) if run_dir is not None else None
        self.redact = redact or redact_url
        self.guard = TrackingGuard(tracking_uri, redact=self.redact)
        self.experiment_id: str | None = None
        self.parent_run_id: str | None = None
        self._client: MlflowClient | None = None
        self._logged: set[int] = set()
        self._lock = threading.RLock()

    # -- public API ---------------------------------------------------------------------------
    def start(self, study: optuna.Study) -> str | None:
        """Find or create the study's parent run (status RUNNING); return its id (None if tracking failed).

        Also sets the experiment's saved views (``lepton-trials``, ``lepton-front``: see ``_views``).
        """
        with self._lock:
            parent = self.guard.run("start the parent run", lambda: self._start(study))
            if parent is not None:
                self.guard.run("set the experiment's saved views", lambda: self._log_views(study))
            return parent

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Optuna callback: log ``trial`` as a child run, then the hypervolume on the parent."""
        with self._lock:
            if self._ready(study) and trial.number not in self._logged:
                self.guard.run(f"log trial {trial.number}", lambda: self._log_child(study, trial))
                self.guard.run("log the hypervolume", lambda: self._log_hypervolume(study, trial.number))

    def log_interrupted(self, study: optuna.Study, trial: FrozenTrial) -> None:
        """Log a trial cut short by Ctrl-C as a child run ended with status KILLED."""
        with self._lock:
            if self._ready(study) and trial.number not in self._logged:
                self.guard.run(
                    f"log interrupted trial {trial.number}",
                    lambda: self._log_child(study, trial, status="KILLED", interrupted=True),
                )

    def finish(
        self, study: optuna.Study, *, report_path: str | os.PathLike[str] | None = None, status: str = "FINISHED"
    ) -> None:
        """Tag children ``pareto=true/false``; log summary and ``best_<objective>`` metrics, the front table,
        the description and the report on the parent; refresh the saved views; end the parent run."""
        with self._lock:
            if not self._ready(study):
                return
            self.guard.run("tag the Pareto front", lambda: self._tag_front(study))
            self.guard.run("log the study summary", lambda: self._log_summary(study))
            self.guard.run("describe the study on its parent run", lambda: self._log_parent_page(study))
            self.guard.run("set the experiment's saved views", lambda: self._log_views(study))
            if report_path is not None and Path(report_path).is_file():
                self.guard.run(
                    "log the report",
                    lambda: self._require_client().log_artifact(self._require_parent(), os.fspath(report_path)),
                )
            self.guard.run(
                "end the parent run",
                lambda: self._require_client().set_terminated(self._require_parent(), status=status),
            )

    # -- internals ----------------------------------------------------------------------------
    def _ready(self, study: optuna.Study) -> bool:
        if self.parent_run_id is None:
            self.guard.run("start the parent run", lambda: self._start(study))
        return self.parent_run_id is not None

    def _require_client(self) -> MlflowClient:
        assert self._client is not None, "start() first"
        return self._client

    def _require_parent(self) -> str:
        assert self.parent_run_id is not None, "start() first"
        return self.parent_run_id

    def _experiment(self, client: MlflowClient) -> str:
        if sqlite_path(self.tracking_uri) is not None:
            location = self.run_dir / "mlartifacts" if self.run_dir is not None else None
            return ensure_tracking_store(self.tracking_uri, self.study_name, location)
        experiment = client.get_experiment_by_name(self.study_name)
        if experiment is None:
            try:
                return client.create_experiment(self.study_name)
            except Exception:  # another worker created it first
                experiment = client.get_experiment_by_name(self.study_name)
                if experiment is None:
                    raise
        if experiment.lifecycle_stage == "deleted":
            client.restore_experiment(experiment.experiment_id)
        return str(experiment.experiment_id)

    def _search(self, filter_string: str) -> Iterator[Any]:
        client, token = self._require_client(), None
        while True:
            page = client.search_runs(
                [self.experiment_id or ""],
                filter_string=filter_string,
                order_by=["attributes.start_time ASC"],
                page_token=token,
            )
            yield from page
            token = page.token
            if not token:
                return

    def _parents(self) -> list[Any]:
        runs = [
            r
            for r in self._search("tags.`lepton.role` = 'study'")
            if r.data.tags.get("lepton.study_name") == self.study_name
        ]
        return sorted(runs, key=lambda r: (r.info.start_time, r.info.run_id))

    def _children(self) -> list[Any]:
        return list(self._search(f"tags.`{_PARENT_TAG}` = '{self._require_parent()}'"))

    def _start(self, study: optuna.Study) -> str:
        from mlflow import MlflowClient
        from mlflow.entities import RunTag

        client = MlflowClient(tracking_uri=self.tracking_uri)
        self._client = client
        self.experiment_id = self._experiment(client)
        objectives = _objectives(study)
        tags = study_tags(
            study.user_attrs,
            study_name=self.study_name,
            objectives=objectives,
            directions=[d.name.lower() for d in study.directions],
            redact=self.redact,
        )
        parents = self._parents()
        if parents:
            parent_id = parents[0].info.run_id
            client.update_run(parent_id, status="RUNNING")
        else:
            parent_id = client.create_run(self.experiment_id, tags=tags, run_name=self.study_name).info.run_id
            first = self._parents()[0].info.run_id  # two workers may have raced: the oldest parent wins
            if first != parent_id:
                client.delete_run(parent_id)
                parent_id = first
        self.parent_run_id = parent_id
        client.log_batch(parent_id, tags=[RunTag(k, v) for k, v in tags.items()])
        client.log_text(parent_id, self.redact(_study_json(study)), "study.json")
        children = self._children()
        self._logged = {int(r.data.tags["trial_number"]) for r in children if "trial_number" in r.data.tags}
        self._end_stale_children(study, children)
        return str(parent_id)

    def _end_stale_children(self, study: optuna.Study, children: list[Any]) -> None:
        """A child left RUNNING (its process died mid-log) is ended: KILLED unless its trial still runs."""
        running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
        for run in children:
            number = run.data.tags.get("trial_number")
            if run.info.status == "RUNNING" and (number is None or int(number) not in running):
                self._require_client().set_terminated(run.info.run_id, status="KILLED")

    def _log_child(
        self, study: optuna.Study, trial: FrozenTrial, *, status: str | None = None, interrupted: bool = False
    ) -> None:
        from mlflow.entities import Metric, Param

        client = self._require_client()
        record = child_record(
            trial,
            study_name=self.study_name,
            objectives=_objectives(study),
            host=study.user_attrs.get("host"),
            redact=self.redact,
        )
        tags = {**record.tags, _PARENT_TAG: self._require_parent()}
        if interrupted:
            tags["interrupted"] = "true"
        status = status or run_status(trial)
        run_id = client.create_run(
            self.experiment_id or "", start_time=_ms(trial.datetime_start), tags=tags, run_name=record.run_name
        ).info.run_id
        self._logged.add(trial.number)
        end = _ms(trial.datetime_complete) or int(time.time() * 1000)
        ended = False
        try:
            metrics = [Metric(k, v, end, 0) for k, v in record.metrics.items()]
            params = [Param(k, v) for k, v in record.params.items()]
            first, rest = params[:100], params[100:]  # MLflow: <= 100 params and <= 1000 entities per batch
            client.log_batch(run_id, params=first, metrics=metrics[: 1000 - len(first)])
            for chunk in _chunks(rest, 100):
                client.log_batch(run_id, params=chunk)
            for chunk in _chunks(metrics[1000 - len(first) :], 1000):
                client.log_batch(run_id, metrics=chunk)
            client.log_text(run_id, record.artifact, "trial.json")
            client.set_terminated(run_id, status=status, end_time=end)
            ended = True
        finally:
            if not ended:  # an error or Ctrl-C mid-log: never leave the run RUNNING
                client.set_terminated(run_id, status="FAILED" if status != "KILLED" else "KILLED", end_time=end)

    def _log_hypervolume(self, study: optuna.Study, step: int) -> None:
        from lepton_tune.front import study_hypervolume

        self._require_client().log_metric(self._require_parent(), "hypervolume", study_hypervolume(study), step=step)

    def _tag_front(self, study: optuna.Study) -> None:
        from mlflow.entities import RunTag

        from lepton_tune.front import feasible_front

        client = self._require_client()
        front = {t.number for t in feasible_front(study)}
        children = self._children()
        self._end_stale_children(study, children)
        for run in children:
            number = run.data.tags.get("trial_number")
            value = str(number is not None and int(number) in front).lower()
            if run.data.tags.get("pareto") != value:
                client.set_tag(run.info.run_id, "pareto", value)
        client.log_batch(self._require_parent(), tags=[RunTag("pareto_trials", ",".join(map(str, sorted(front))))])

    def _log_summary(self, study: optuna.Study) -> None:
        from mlflow.entities import Metric

        from lepton_tune.front import is_feasible, study_hypervolume

        trials = study.get_trials(deepcopy=False)
        now = int(time.time() * 1000)
        step = max((t.number for t in trials), default=0)
        counts = {
            "n_trials": sum(t.state.is_finished() for t in trials),
            "n_feasible": sum(is_feasible(t) for t in trials),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
            "hypervolume": study_hypervolume(study),
        }
        self._require_client().log_batch(
            self._require_parent(), metrics=[Metric(k, float(v), now, step) for k, v in counts.items()]
        )

    def _log_views(self, study: optuna.Study) -> None:
        client = self._require_client()
        searched = _searched(study)
        views = StudyViews(
            _objectives(study), [d.name.lower() for d in study.directions], [metric_key(k) for k in searched]
        )
        for key, value in experiment_tags(views).items():
            client.set_experiment_tag(self.experiment_id or "", key, value)

    def _log_parent_page(self, study: optuna.Study) -> None:
        """The parent's description, ``best_<objective>`` metrics and the front as a table artifact."""
        from mlflow.entities import Metric, RunTag

        from lepton_tune.front import feasible_front, is_feasible

        client, parent = self._require_client(), self._require_parent()
        objectives, directions = _objectives(study), [d.name.lower() for d in study.directions]
        trials = study.get_trials(deepcopy=False)
        front, searched = feasible_front(study), _searched(study)
        counts = {
            "n_trials": sum(t.state.is_finished() for t in trials),
            "n_feasible": sum(is_feasible(t) for t in trials),
            "n_failed": sum(t.state == TrialState.FAIL for t in trials),
        }
        note = study_note(
            study_name=self.study_name,
            objectives=objectives,
            directions=directions,
            searched=searched,
            budgets=study.user_attrs.get("budgets") or {},
            counts=counts,
            front=front,
        )
        now = int(time.time() * 1000)
        step = max((t.number for t in trials), default=0)
        best = [Metric(k, v, now, step) for k, v in best_values(front, objectives, directions).items()]
        client.log_batch(
            parent,
            metrics=best,
            tags=[RunTag("mlflow.note.content", self.redact(note)), RunTag("searched_params", ",".join(searched))],
        )
        with warnings.catch_warnings():  # pandas 3's dtype notice from inside log_table, not ours to act on
            warnings.simplefilter("ignore", FutureWarning)
            warnings.simplefilter("ignore", DeprecationWarning)
            client.log_table(
                parent,
                data=front_table(front, objectives, [metric_key(k) for k in searched]),
                artifact_file="pareto_front.json",
            )


def _searched(study: optuna.Study) -> dict[str, str]:
    """Searched point fields with their ranges (the study's space, else the fields that varied)."""
    from lepton_tune.front import searched_params

    points = [TrialRecord.of(t).point or t.params for t in study.get_trials(deepcopy=False)]
    return searched_params(study.user_attrs, points)


def _objectives(study: optuna.Study) -> list[str]:
    names = study.user_attrs.get("objectives") or study.metric_names
    return [str(n) for n in names] if names else [f"objective_{i}" for i in range(len(study.directions))]


def _study_json(study: optuna.Study) -> str:
    import json

    return json.dumps(
        {
            "study_name": study.study_name,
            "directions": [d.name for d in study.directions],
            "user_attrs": study.user_attrs,
        },
        indent=2,
        default=str,
        sort_keys=True,
    )
