"""Saved views, the parent run's page and the UI links, against a real MLflow SQLite store."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import optuna
import pytest
from mlflow import MlflowClient

from lepton_tune.tracking import MLflowTracker, StudyViews, TrackingWarning, experiment_tags, runs_url, study_links
from lepton_tune.tracking._views import view_state
from tests.report_tests._studies import DISTRIBUTIONS, ROWS, RowObjective, empty_study, enqueue_rows, trial_record

optuna.logging.set_verbosity(optuna.logging.ERROR)
pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")

VIEWS = StudyViews(
    ["accuracy", "latency_p95_ms", "memory_mb"], ["maximize", "minimize", "minimize"], ["backbone", "shards"]
)


def _tracked(tmp_path: Path, uri: str) -> tuple[optuna.Study, MLflowTracker]:
    study = empty_study(tmp_path / "run")
    study.set_user_attr(
        "spec",
        {
            "search_space": {
                "params": {
                    "backbone": {"choices": ["small_cnn", "resnet18"]},
                    "precision": {"choices": ["fp32", "bf16", "int8"]},
                    "shards": {"low": 1, "high": 4},
                    "batch_size": {"choices": [1, 8, 32]},
                    "pin": {"choices": [False]},
                }
            }
        },
    )
    enqueue_rows(study, ROWS)
    tracker = MLflowTracker(uri, "demo", run_dir=tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        tracker.start(study)
        study.optimize(RowObjective(ROWS), n_trials=len(ROWS), catch=(Exception,), callbacks=[tracker])
        tracker.finish(study)
    return study, tracker


def test_view_state_sorts_by_the_first_objective_and_lists_flat() -> None:
    state = view_state(VIEWS, search_filter='tags.pareto = "true"')
    assert state["orderByKey"] == "metrics.`accuracy`" and state["orderByAsc"] is False  # maximize: best first
    assert state["selectedColumns"][:6] == [
        "metrics.`accuracy`",
        "metrics.`latency_p95_ms`",
        "metrics.`memory_mb`",
        "metrics.`accuracy_drop`",  # points below your own model (a study of a model you bring)
        "metrics.`speedup`",
        "metrics.`memory_ratio`",
    ]
    assert "params.`backbone`" in state["selectedColumns"] and state["runsHiddenMode"] == "SHOW_ALL"
    charts = {(c["xaxis"]["key"], c["yaxis"]["key"]) for c in state["compareRunCharts"]}
    assert charts == {("latency_p95_ms", "accuracy"), ("memory_mb", "accuracy")}
    minimize = view_state(StudyViews(["latency_p95_ms"], ["minimize"], []), search_filter="")
    assert minimize["orderByAsc"] is True and "compareRunCharts" not in minimize


def test_experiment_tags_hold_the_ui_envelope() -> None:
    tags = experiment_tags(VIEWS, now_ms=5)
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    envelope = json.loads(tags["mlflow.sharedViewState.lepton-front"])
    assert envelope["name"] == "lepton-tune: Pareto front" and envelope["createdAt"] == 5
    assert json.loads(envelope["state"])["searchFilter"] == 'tags.pareto = "true"'
    trials = json.loads(json.loads(tags["mlflow.sharedViewState.lepton-trials"])["state"])
    assert trials["searchFilter"] == 'tags.`lepton.role` = "trial"'


def test_runs_url_keeps_facets_out_of_the_url() -> None:
    url = runs_url("http://127.0.0.1:5000/", "7", "lepton-front", charts=True)
    assert url == (
        "http://127.0.0.1:5000/#/experiments/7/runs?viewStateShareKey=lepton-front"
        "&workflowType=machine_learning&compareRunsMode=CHART"
    )
    assert "searchFilter" not in url and "orderByKey" not in url  # a facet in the URL would void the saved view


def test_finished_study_sets_views_note_front_table_and_best_metrics(tmp_path: Path, mlflow_uri: str) -> None:
    _, tracker = _tracked(tmp_path, mlflow_uri)
    client = MlflowClient(mlflow_uri)
    experiment = client.get_experiment_by_name("demo")
    assert experiment.tags["mlflow.experimentKind"] == "custom_model_development"
    state = json.loads(json.loads(experiment.tags["mlflow.sharedViewState.lepton-trials"])["state"])
    assert [c for c in state["selectedColumns"] if c.startswith("params.")] == [
        "params.`backbone`",
        "params.`precision`",
        "params.`shards`",
        "params.`batch_size`",
    ]

    parent = client.get_run(tracker.parent_run_id)
    note = parent.data.tags["mlflow.note.content"]
    assert "lepton-tune study `demo`" in note and "max `accuracy`, min `latency_p95_ms`, min `memory_mb`" in note
    assert "`backbone` in small_cnn, resnet18" in note and "3 on the Pareto front" in note
    assert "`t1 resnet18 bf16 K2x1 b8`" in note and "pareto=true" in note
    assert parent.data.metrics["best_accuracy"] == 0.96 and parent.data.metrics["best_latency_p95_ms"] == 10.0
    assert parent.data.metrics["best_memory_mb"] == 250.0 and parent.data.tags["searched_params"] == (
        "backbone,precision,shards,batch_size"
    )
    table = json.loads(
        Path(client.download_artifacts(parent.info.run_id, "pareto_front.json", str(tmp_path))).read_text()
    )
    rows = [dict(zip(table["columns"], row)) for row in table["data"]]
    assert [r["trial"] for r in rows] == [0, 1, 6]
    assert rows[2]["run_name"] == "t6 small_cnn int8 K2x1 b32" and rows[2]["latency_p95_ms"] == 10.0


def test_first_trial_noisy_logs_hypervolume_zero_without_warning(tmp_path: Path, mlflow_uri: str) -> None:
    """The bug of every fresh run: a noisy (or over-budget) first trial left no feasible point, and the
    hypervolume failed with "operands could not be broadcast together with shapes (0,) (3,)"."""
    study = empty_study(tmp_path / "run")
    attrs = trial_record(ROWS[0][1], ROWS[0][2], {"baseline": True, "noisy": True, "lepton_status": "noisy"}, 0)
    study.add_trial(
        optuna.trial.create_trial(
            params=ROWS[0][1],
            distributions=DISTRIBUTIONS,
            user_attrs=attrs,
            values=list(ROWS[0][2]),
            constraints={"noisy": 0.4, "budget:accuracy": -0.1},
        )
    )
    tracker = MLflowTracker(mlflow_uri, "demo", run_dir=tmp_path / "run")
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        tracker.start(study)
        tracker(study, study.trials[0])
        tracker.finish(study)
    client = MlflowClient(mlflow_uri)
    assert [m.value for m in client.get_metric_history(tracker.parent_run_id, "hypervolume")] == [0.0, 0.0]
    (child,) = [r for r in client.search_runs([tracker.experiment_id]) if r.data.tags.get("lepton.role") == "trial"]
    assert child.info.run_name == "t0 small_cnn fp32 K1x1 b1 baseline noisy"
    assert child.data.tags["noisy"] == "true" and child.data.tags["pareto"] == "false"


def test_study_links_for_this_store_and_an_older_one(tmp_path: Path, mlflow_uri: str) -> None:
    _, tracker = _tracked(tmp_path, mlflow_uri)
    (links,) = study_links(mlflow_uri, "http://127.0.0.1:5001")
    assert links.study_name == "demo" and links.first_objective == "accuracy"
    assert links.trials.endswith(
        f"/#/experiments/{tracker.experiment_id}/runs?viewStateShareKey=lepton-trials&workflowType=machine_learning"
    )
    assert "viewStateShareKey=lepton-front" in links.front and links.charts.endswith("&compareRunsMode=CHART")
    assert links.parent.endswith(f"/runs/{tracker.parent_run_id}?workflowType=machine_learning")
    assert study_links(mlflow_uri, "http://x", study="other") == []

    # a store from before saved views: they are written from the store itself (params that vary)
    client = MlflowClient(mlflow_uri)
    for key in ("mlflow.sharedViewState.lepton-trials", "mlflow.sharedViewState.lepton-front"):
        client.delete_experiment_tag(tracker.experiment_id, key)
    client.delete_tag(tracker.parent_run_id, "searched_params")
    study_links(mlflow_uri, "http://127.0.0.1:5001")
    tags = client.get_experiment(tracker.experiment_id).tags
    state = json.loads(json.loads(tags["mlflow.sharedViewState.lepton-trials"])["state"])
    assert [c for c in state["selectedColumns"] if c.startswith("params.")] == [
        "params.`backbone`",
        "params.`batch_size`",
        "params.`precision`",
        "params.`shards`",
    ]
