from __future__ import annotations

from pathlib import Path

import pytest
from optuna.trial import TrialState

from lepton_tune.exceptions import SelectionError
from lepton_tune.tuning import parse_requirement, select_trial, study_counts, study_summary

from ._studies import m, make_study


@pytest.fixture
def study(tmp_path: Path):
    return make_study(
        tmp_path,
        [
            {"metrics": m(0.90, 10.0, 300.0), "baseline": True},  # 0 baseline, on the front
            {"metrics": m(0.97, 20.0, 400.0)},  # 1 accurate, slow
            {"metrics": m(0.95, 5.0, 350.0)},  # 2 balanced
            {
                "metrics": m(0.99, 4.0, 200.0),
                "constraints": {"budget:latency_p95_ms": 1.0},
                "status": "infeasible",
            },  # 3
            {"state": TrialState.PRUNED, "status": "infeasible", "reason": "needs CUDA"},  # 4
            {"state": TrialState.FAIL, "status": "failed", "reason": "boom"},  # 5
        ],
    )


def test_counts_and_summary(study) -> None:
    assert study_counts(study) == {
        "complete": 4,
        "feasible": 3,
        "failed": 1,
        "infeasible": 2,
        "running": 0,
        "noisy": 0,
        "confirmations": 0,
    }
    summary = study_summary(study, storage="postgresql+psycopg2://u:pw@h/db")
    assert summary["storage"] == "postgresql+psycopg2://u:***@h/db"
    assert [p["trial"] for p in summary["pareto"]] == [0, 1, 2]
    assert summary["pareto"][1]["values"]["throughput"] == 100.0
    assert [b["trial"] for b in summary["baseline"]] == [0]


def test_prefer_objective_under_limits(study) -> None:
    chosen = select_trial(study, requires=["accuracy>=0.95"], prefer="latency_p95_ms")
    assert chosen.trial.number == 2
    assert "best latency_p95_ms" in chosen.reason


def test_knee(study) -> None:
    assert select_trial(study, requires=[]).trial.number == 2


def test_no_point_meets_limits_shows_closest(study) -> None:
    with pytest.raises(
        SelectionError, match=r"no front point meets accuracy>=0.999; closest:\n  trial 1: accuracy=0.97"
    ):
        select_trial(study, requires=["accuracy>=0.999"])


@pytest.mark.parametrize(
    ("text", "pattern"), [("accuracy=>0.9", "is not METRIC OP NUMBER"), ("speed>=3", "unknown metric 'speed'")]
)
def test_bad_requirements(text: str, pattern: str) -> None:
    with pytest.raises(SelectionError, match=pattern):
        parse_requirement(text)


def test_trial_by_number(study) -> None:
    assert select_trial(study, requires=[], trial_number=1).trial.number == 1
    with pytest.raises(SelectionError, match="--trial 5: no COMPLETE trial"):
        select_trial(study, requires=[], trial_number=5)
