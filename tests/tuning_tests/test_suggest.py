"""Suggestions from the space, tested on optuna.trial.FixedTrial (no study)."""

from __future__ import annotations

import optuna
import pytest

from lepton_tune.config import HostFacts, load_search_space
from lepton_tune.tuning import budget_violations, suggest_point
from lepton_tune.tuning._baseline import baseline_point

HOST = HostFacts(cores=2, memory_gib=24.0, gpus=0)
SPACE = load_search_space(
    {
        "params": {
            "backbone": {"choices": ["small_cnn", "resnet18"]},
            "shards": {"low": 1, "high": "auto"},
            "mode": {"choices": ["replica", "pipeline"]},
            "threads_per_shard": {"low": 1, "high": "auto"},
            "share_weights": {"choices": [False, True]},
            "batch_size": {"choices": [1, 8]},
        },
        "constraints": [
            "shards * threads_per_shard <= cores",
            'mode == "replica" or shards > 1',
            'mode == "replica" or not share_weights',
        ],
    },
    host=HOST,
)


def test_fixed_trial_point_carries_defaults() -> None:
    trial = optuna.trial.FixedTrial(
        {
            "backbone": "resnet18",
            "shards": 1,
            "mode": "replica",
            "threads_per_shard": 2,
            "share_weights": True,
            "batch_size": 8,
        }
    )
    point, reason = suggest_point(trial, SPACE, HOST, defaults={"train.epochs": 3})
    assert reason is None
    assert point["train.epochs"] == 3 and point["precision"] == "fp32" and point["pool_slots"] == 16


def test_threads_are_bounded_by_shards() -> None:
    # With 2 shards on 2 cores only threads_per_shard=1 is left: asking for 2 is out of range.
    study = optuna.create_study()
    for _ in range(20):
        trial = study.ask()
        point, reason = suggest_point(trial, SPACE, HOST)
        assert reason is None
        assert point["shards"] * point["threads_per_shard"] <= 2
        study.tell(trial, 0.0)


def test_pipeline_forces_conditionals() -> None:
    trial = optuna.trial.FixedTrial(
        {"backbone": "small_cnn", "shards": 2, "mode": "pipeline", "threads_per_shard": 1, "batch_size": 1}
    )
    point, reason = suggest_point(trial, SPACE, HOST)
    assert reason is None
    assert point["share_weights"] is False  # fixed by the constraint, not asked


def test_one_stage_pipeline_is_fixed_to_replica() -> None:
    trial = optuna.trial.FixedTrial(
        {"backbone": "small_cnn", "shards": 1, "threads_per_shard": 1, "share_weights": False, "batch_size": 1}
    )
    point, _ = suggest_point(trial, SPACE, HOST)
    assert point["mode"] == "replica"


def test_budget_violation_signs() -> None:
    got = budget_violations({"accuracy": 0.9, "latency_p95_ms": 10.0}, {"accuracy": 0.95, "latency_p95_ms": 12.0})
    assert got["budget:accuracy"] == pytest.approx(-0.05)
    assert got["budget:latency_p95_ms"] == pytest.approx(2.0)


def test_baseline_is_naive_pytorch() -> None:
    point = baseline_point("resnet18", HOST, {}, SPACE)
    assert (point["shards"], point["threads_per_shard"], point["batch_size"], point["precision"], point["pin"]) == (
        1,
        2,
        1,
        "fp32",
        False,
    )


def test_thread_isolation_is_searched_only_where_it_can_serve() -> None:
    from lepton_tune.config import load_study
    from lepton_tune.tuning._objective import host_feasibility

    space = load_study("studies/cpu-latency-224.yaml").search_space
    host = HostFacts(2, 8.0, 0)
    fixed = {
        "backbone": "resnet18",
        "precision": "fp32",
        "shards": 2,
        "mode": "replica",
        "threads_per_shard": 1,
        "pin": True,
        "batch_size": 8,
        "max_wait_ms": 0.0,
        "share_weights": False,
    }
    point, reason = suggest_point(
        optuna.trial.FixedTrial({**fixed, "runtime": "eager", "isolation": "thread"}), space, host
    )
    assert reason is None and point["isolation"] == "process"  # the one value allowed: not asked of the sampler
    point, reason = suggest_point(
        optuna.trial.FixedTrial({**fixed, "runtime": "onnxruntime", "isolation": "thread"}), space, host
    )
    assert reason is None and host_feasibility(point, host) == (host_feasibility(point, host)[0], None)
    _, why = host_feasibility({**point, "mode": "pipeline"}, host)
    assert why is not None and why.startswith(
        "isolation 'thread' serves runtime 'onnxruntime' or 'openvino', mode 'replica'"
    )
    assert baseline_point("resnet18", host, {}, space)["isolation"] == "process"  # the naive layout: one process
