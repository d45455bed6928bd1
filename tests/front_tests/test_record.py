"""The typed trial record reads and writes exactly the user attributes docs/trial-record.md names."""

from __future__ import annotations

import optuna
import pytest

from lepton_tune.exceptions import (
    ConfigError,
    EngineError,
    EngineLayoutError,
    HostBusyError,
    error_from,
)
from lepton_tune.front import STATUSES, TrialRecord
from lepton_tune.measure._isolated import JobOutcome


def test_round_trip_keeps_every_key_including_unknown_ones() -> None:
    attrs = {
        "lepton_status": "ok",
        "reason": "",
        "point": {"backbone": "small_cnn", "shards": 2},
        "metrics": {"throughput": 100.0, "accuracy": 0.9},
        "baseline": False,
        "noisy": False,
        "confirms": 3,
        "future_key": [1, 2],
    }
    record = TrialRecord.from_attrs(attrs)
    assert record.status == "ok" and record.confirms == 3 and record.backbone == "small_cnn"
    assert record.extra == {"future_key": [1, 2]}
    assert record.to_attrs() == attrs


def test_missing_keys_have_one_default_and_are_not_written_back() -> None:
    record = TrialRecord.from_attrs({"metrics": None, "point": {"backbone": "resnet18"}})
    assert record.status is None and record.metrics == {} and record.confirms is None
    assert not record.is_confirmation and record.metric("throughput") is None
    assert record.to_attrs() == {"point": {"backbone": "resnet18"}, "baseline": False, "noisy": False}
    assert TrialRecord.from_attrs({"lepton_status": "bogus"}).status is None
    assert set(STATUSES) == {"ok", "infeasible", "failed", "noisy"}


def test_of_reads_a_stored_trial() -> None:
    study = optuna.create_study(directions=["maximize"])
    study.add_trial(
        optuna.trial.create_trial(
            values=[1.0], user_attrs={"lepton_status": "noisy", "noisy": True, "metrics": {"throughput": 1.0}}
        )
    )
    record = TrialRecord.of(study.trials[0])
    assert record.noisy and record.status == "noisy" and record.metric("throughput") == 1.0


@pytest.mark.parametrize(
    ("name", "cls"),
    [("EngineLayoutError", EngineLayoutError), ("ConfigError", ConfigError), ("HostBusyError", HostBusyError)],
)
def test_errors_cross_the_process_boundary_with_their_type(name: str, cls: type) -> None:
    error = JobOutcome("error", reason=f"{name}: no place to cut", error_type=name).error()
    assert type(error) is cls and str(error) == "no place to cut"


def test_foreign_errors_become_engine_errors_that_name_the_original() -> None:
    error = error_from("RuntimeError", "mat1 and mat2 shapes cannot be multiplied")
    assert type(error) is EngineError and str(error).startswith("RuntimeError: mat1")
    assert type(error_from("os", "x")) is EngineError  # a module attribute that is no error class
    assert type(JobOutcome("error", reason="trial process died (exit code -9)").error()) is EngineError
