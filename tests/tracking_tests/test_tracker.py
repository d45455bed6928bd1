"""MLflowTracker against a real MLflow SQLite store and real Optuna SQLite studies."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import mlflow
import optuna
import pytest
from mlflow import MlflowClient

from lepton_tune.front import feasible_front
from lepton_tune.tracking import MLflowTracker, TrackingWarning
from tests.report_tests._studies import ROWS, RowObjective, empty_study, enqueue_rows

optuna.logging.set_verbosity(optuna.logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _runs(uri: str, name: str = "demo"):  # type: ignore[no-untyped-def]
    mlflow.set_tracking_uri(uri)
    try:
        return mlflow.search_runs(experiment_names=[name], output_format="list")
    finally:
        mlflow.set_tracking_uri(None)


def _split(runs):  # type: ignore[no-untyped-def]
    parents = [r for r in runs if r.data.tags.get("lepton.role") == "study"]
    children = {f"trial-{r.data.tags['trial_number']}": r for r in runs if r.data.tags.get("lepton.role") == "trial"}
    return parents, children


def _search(study: optuna.Study, tracker: MLflowTracker, rows: list[tuple]) -> None:
    enqueue_rows(study, rows)
    tracker.start(study)
    study.optimize(RowObjective(rows), n_trials=len(rows), catch=(Exception,), callbacks=[tracker])
    tracker.finish(study)


def test_search_logs_parent_and_one_child_per_trial(tmp_path: Path, mlflow_uri: str) -> None:
    study = empty_study(tmp_path / "run")
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        _search(study, tracker, ROWS)

    parents, children = _split(_runs(mlflow_uri))
    assert len(parents) == 1 and parents[0].info.run_name == "demo" and parents[0].info.status == "FINISHED"
    assert sorted(children) == [f"trial-{i}" for i in range(len(ROWS))]
    assert {c.info.run_name for c in children.values()} == {
        "t0 small_cnn fp32 K1x1 b1 baseline",
        "t1 resnet18 bf16 K2x1 b8",
        "t2 resnet18 fp32 K1x1 b8",
        "t3 resnet18 fp32 K2x1 b1",
        "t4 small_cnn int8 K4x1 b32",
        "t5 resnet18 int8 K1x1 b32",
        "t6 small_cnn int8 K2x1 b32",
    }
    assert all(c.data.tags["mlflow.parentRunId"] == parents[0].info.run_id for c in children.values())
    assert {n: c.info.status for n, c in children.items()} == {
        "trial-0": "FINISHED",
        "trial-1": "FINISHED",
        "trial-2": "FINISHED",
        "trial-3": "FINISHED",
        "trial-4": "FINISHED",
        "trial-5": "FAILED",
        "trial-6": "FINISHED",
    }

    first = children["trial-1"]
    assert first.data.params["backbone"] == "resnet18" and first.data.params["train.epochs"] == "5"
    assert first.data.metrics["accuracy"] == 0.96 and first.data.metrics["latency_p95_ms"] == 20.0
    assert first.data.metrics["latency_p95_ms_spread"] == 1.5 and first.data.metrics["train_seconds"] == 3.0
    assert first.data.metrics["measure_seconds"] == 4.0 and first.data.metrics["budget_latency_p95_ms"] == -30.0
    assert first.data.tags["precision"] == "bf16" and first.data.tags["host.cpu_model"] == "AMD EPYC"
    assert first.data.tags["trial_number"] == "1" and first.data.tags["state"] == "COMPLETE"
    assert children["trial-0"].data.tags["baseline"] == "true"
    assert children["trial-3"].data.tags["feasible"] == "false"
    assert children["trial-3"].data.tags["reason"] == "misses budget(s): latency_p95_ms"
    assert children["trial-4"].data.tags["state"] == "PRUNED"
    assert children["trial-4"].data.tags["lepton_status"] == "infeasible"
    assert "usable cores" in children["trial-4"].data.tags["reason"]
    assert children["trial-5"].data.tags["reason"] == "EngineError: shard 0 died"

    artifact = MlflowClient(mlflow_uri).download_artifacts(first.info.run_id, "trial.json", str(tmp_path))
    assert '"recipe_hash": "r1"' in Path(artifact).read_text()
    assert str(tmp_path / "run" / "mlartifacts") in first.info.artifact_uri

    front = {f"trial-{t.number}" for t in feasible_front(study)}
    assert front == {"trial-0", "trial-1", "trial-6"}
    assert {n for n, c in children.items() if c.data.tags["pareto"] == "true"} == front
    assert {n for n, c in children.items() if c.data.tags["pareto"] == "false"} == set(children) - front
    assert parents[0].data.tags["pareto_trials"] == "0,1,6"

    history = MlflowClient(mlflow_uri).get_metric_history(parents[0].info.run_id, "hypervolume")
    steps = [m.step for m in history if m.step < len(ROWS)]
    values = [m.value for m in sorted(history, key=lambda m: (m.step, m.timestamp))]
    assert set(range(len(ROWS))) <= set(steps)
    assert values == sorted(values) and values[0] > 0


def test_resume_reuses_parent_and_moves_pareto_tags(tmp_path: Path, mlflow_uri: str) -> None:
    study = empty_study(tmp_path / "run")
    _search(study, MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run"), ROWS[:3])
    parents, children = _split(_runs(mlflow_uri))
    assert children["trial-2"].data.tags["pareto"] == "false" and children["trial-1"].data.tags["pareto"] == "true"

    # trial 3 dominates trial 1 in every objective and meets the budgets: trial 1 leaves the front
    better = (ROWS[1][0], dict(ROWS[1][1], precision="int8"), (0.97, 15.0, 350.0), {})
    again = optuna.load_study(study_name="demo", storage=f"sqlite:///{tmp_path / 'run' / 'study.db'}")
    rows = ROWS[:3] + [better]
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    assert tracker.start(again) == parents[0].info.run_id
    again.enqueue_trial(better[1])
    again.optimize(RowObjective(rows), n_trials=1, callbacks=[tracker])
    tracker(again, again.trials[0])  # already logged: no duplicate child
    tracker.finish(again)

    parents, children = _split(_runs(mlflow_uri))
    assert len(parents) == 1 and sorted(children) == ["trial-0", "trial-1", "trial-2", "trial-3"]
    assert children["trial-1"].data.tags["pareto"] == "false"
    assert children["trial-3"].data.tags["pareto"] == "true"


def test_interrupted_trial_is_killed_never_running(tmp_path: Path, mlflow_uri: str) -> None:
    study = empty_study(tmp_path / "run")
    enqueue_rows(study, ROWS)
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    tracker.start(study)
    with pytest.raises(KeyboardInterrupt):
        study.optimize(RowObjective(ROWS, interrupt_at=2), n_trials=5, callbacks=[tracker])
    cut = [t for t in study.trials if t.state == optuna.trial.TrialState.FAIL][-1]
    assert cut.number == 2
    tracker.log_interrupted(study, cut)
    tracker.finish(study, status="KILLED")

    parents, children = _split(_runs(mlflow_uri))
    assert parents[0].info.status == "KILLED"
    assert children["trial-2"].info.status == "KILLED" and children["trial-2"].data.tags["interrupted"] == "true"
    assert all(r.info.status != "RUNNING" for r in _runs(mlflow_uri))


def test_store_failing_mid_study_warns_once_and_keeps_every_trial(tmp_path: Path, mlflow_uri: str) -> None:
    study = empty_study(tmp_path / "run")
    enqueue_rows(study, ROWS)
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    tracker.start(study)
    db = Path(mlflow_uri.removeprefix("sqlite:///"))

    def break_store(study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        if trial.number == 1:
            os.replace(db, db.with_suffix(".moved"))  # the tracking store disappears mid-study

    def search() -> None:
        study.optimize(RowObjective(ROWS), n_trials=len(ROWS), catch=(Exception,), callbacks=[tracker, break_store])
        tracker.finish(study)

    with pytest.warns(TrackingWarning, match=r"MLflow tracking failed to .* The study goes on") as record:
        search()
    assert len([w for w in record if issubclass(w.category, TrackingWarning)]) == 1
    assert len(study.trials) == len(ROWS) and all(t.state.is_finished() for t in study.trials)
    assert tracker.guard.failures >= 1

    os.replace(db.with_suffix(".moved"), db)
    _, children = _split(_runs(mlflow_uri))
    assert "trial-0" in children and children["trial-0"].info.status == "FINISHED"
    assert all(r.info.status != "RUNNING" for r in _runs(mlflow_uri) if r.data.tags.get("lepton.role") == "trial")


def test_failure_inside_a_child_run_ends_it_failed(tmp_path: Path, mlflow_uri: str) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where the artifact directory should be")
    client = MlflowClient(mlflow_uri)
    client.create_experiment("demo", artifact_location=str(blocker / "artifacts"))
    study = empty_study(tmp_path / "run")
    enqueue_rows(study, ROWS[:2])
    tracker = MLflowTracker(mlflow_uri, "demo", redact=lambda s: s)
    with pytest.warns(TrackingWarning, match="MLflow tracking failed to start the parent run"):
        tracker.start(study)  # the study.json artifact cannot be written
    tracker.parent_run_id = None
    tracker.guard.in_a_row = 0
    study.optimize(RowObjective(ROWS), n_trials=2, callbacks=[tracker])
    runs = _runs(mlflow_uri)
    trials = [r for r in runs if r.data.tags.get("lepton.role") == "trial"]
    assert trials and all(r.info.status == "FAILED" for r in trials)  # artifact failed: ended, not RUNNING


def test_passwords_never_reach_mlflow(tmp_path: Path, mlflow_uri: str) -> None:
    rows = [
        ROWS[0],
        (
            ROWS[5][0],
            ROWS[5][1],
            None,
            {"lepton_status": "failed", "reason": "OperationalError: postgresql://bob:s3cret@db/optuna"},
        ),
    ]
    study = empty_study(tmp_path / "run")
    study.set_user_attr("spec", {"storage": {"url": "postgresql://bob:s3cret@db/optuna"}})
    _search(study, MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run"), rows)
    client = MlflowClient(mlflow_uri)
    for run in _runs(mlflow_uri):
        assert "s3cret" not in repr(run.data.tags) + repr(run.data.params)
        for name in ("trial.json", "study.json"):
            if any(a.path == name for a in client.list_artifacts(run.info.run_id)):
                assert "s3cret" not in Path(client.download_artifacts(run.info.run_id, name, str(tmp_path))).read_text()
    _, children = _split(_runs(mlflow_uri))
    assert children["trial-1"].data.tags["reason"] == "OperationalError: postgresql://bob:***@db/optuna"


def test_report_is_logged_on_the_parent(tmp_path: Path, mlflow_uri: str) -> None:
    study = empty_study(tmp_path / "run")
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    tracker.start(study)
    report = tmp_path / "report-demo.html"
    report.write_text("<html></html>")
    tracker.finish(study, report_path=report)
    names = [a.path for a in MlflowClient(mlflow_uri).list_artifacts(tracker.parent_run_id)]
    assert "report-demo.html" in names and "study.json" in names


def test_unreachable_server_never_stops_the_study(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "2")
    study = empty_study(tmp_path / "run")
    tracker = MLflowTracker("http://bob:s3cret@127.0.0.1:9", "demo")

    def search() -> None:
        tracker.start(study)
        _search(study, tracker, ROWS[:3])
        tracker.log_interrupted(study, study.trials[0])

    with pytest.warns(
        TrackingWarning, match=r"failed to start the parent run at http://bob:\*\*\*@127\.0\.0\.1:9"
    ) as seen:
        search()
    assert len(seen) == 1 and "s3cret" not in str(seen[0].message)
    assert [t.state.name for t in study.trials] == ["COMPLETE", "COMPLETE", "COMPLETE"]
    assert tracker.guard.disabled and tracker.parent_run_id is None
