"""What a child run holds, computed from a trial without MLflow."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest

from lepton_tune.tracking import TrackingGuard, TrackingWarning, child_record, redact_url
from lepton_tune.tracking._record import metric_key, run_status, study_tags
from tests.report_tests._studies import HOST, OBJECTIVES, make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_complete_trial(tmp_path: Path) -> None:
    trial = make_study(tmp_path).trials[3]
    record = child_record(trial, study_name="demo", objectives=OBJECTIVES, host=HOST, redact=redact_url)
    assert record.run_name == "t3 resnet18 fp32 K2x1 b1"
    assert record.params == {
        "backbone": "resnet18",
        "precision": "fp32",
        "shards": "2",
        "batch_size": "1",
        "threads_per_shard": "1",
        "train.epochs": "5",
    }
    assert record.metrics["accuracy"] == 0.97 and record.metrics["latency_p95_ms_spread"] == 1.5
    assert record.metrics["total_seconds"] == 9.0 and record.metrics["model_flops"] == 2e6
    assert record.metrics["budget_latency_p95_ms"] == 30.0
    assert record.tags["feasible"] == "false" and record.tags["state"] == "COMPLETE"
    assert record.tags["lepton_status"] == "infeasible" and record.tags["host.cores"] == "2"
    assert record.tags["backbone"] == "resnet18" and record.tags["host_id"] == "h0st"
    assert json.loads(record.artifact)["user_attrs"]["model"]["recipe_hash"] == "r3"


def test_pruned_and_failed_trials(tmp_path: Path) -> None:
    trials = make_study(tmp_path).trials
    pruned = child_record(trials[4], study_name="demo", objectives=OBJECTIVES)
    failed = child_record(trials[5], study_name="demo", objectives=OBJECTIVES)
    assert pruned.tags["state"] == "PRUNED" and "usable cores" in pruned.tags["reason"]
    assert failed.tags["reason"] == "EngineError: shard 0 died" and "accuracy" not in failed.metrics
    assert [run_status(t) for t in trials[3:6]] == ["FINISHED", "FINISHED", "FAILED"]


def test_study_tags_redact_and_list_the_host() -> None:
    tags = study_tags(
        {"budgets": {"accuracy": 0.8}, "host": HOST, "host_id": "h0st", "spec_source": "postgresql://bob:s3cret@db/x"},
        study_name="demo",
        objectives=OBJECTIVES,
        directions=["maximize"],
        redact=redact_url,
    )
    assert tags["objectives"] == "accuracy,latency_p95_ms,memory_mb" and tags["budgets"] == '{"accuracy": 0.8}'
    assert tags["host.cpu_model"] == "AMD EPYC" and tags["spec_source"] == "postgresql://bob:***@db/x"


def test_metric_keys_are_valid_mlflow_names() -> None:
    assert (
        metric_key("budget:latency_p95_ms") == "budget_latency_p95_ms" and metric_key("train.epochs") == "train.epochs"
    )


def test_guard_warns_once_then_stops_after_failures_in_a_row() -> None:
    guard = TrackingGuard("http://bob:s3cret@mlflow:5000", redact=redact_url, max_failures=3)
    calls = []

    def boom() -> None:
        calls.append(1)
        raise ConnectionError("connection refused by http://bob:s3cret@mlflow:5000")

    with pytest.warns(TrackingWarning, match=r"failed to log trial 0 at http://bob:\*\*\*@mlflow:5000") as seen:
        results = [guard.run("log trial 0", boom) for _ in range(5)]
    assert results == [None] * 5
    assert len(seen) == 1 and "s3cret" not in str(seen[0].message)
    assert len(calls) == 3 and guard.disabled


def test_guard_success_resets_the_count() -> None:
    guard = TrackingGuard("sqlite:///x.db", max_failures=2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TrackingWarning)
        guard.run("a", lambda: 1 / 0)
        assert guard.run("b", lambda: 7) == 7
        guard.run("c", lambda: 1 / 0)
    assert not guard.disabled and guard.failures == 2


def test_guard_lets_ctrl_c_through() -> None:
    def interrupt() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        TrackingGuard("sqlite:///x.db").run("log", interrupt)
