"""The shared front and the recommended picks on real SQLite studies (noisy, confirmations, baseline)."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tune.front import (
    export_command,
    feasible_front,
    knee_index,
    recommended_picks,
    study_hypervolume,
    study_location,
    with_first,
)
from lepton_tune.tuning import pareto_trials, select_trial
from tests.front_tests._picks_study import picks_study
from tests.report_tests._studies import make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_noisy_and_confirmations_never_stand_on_the_front(tmp_path: Path) -> None:
    study = picks_study(tmp_path)
    # trial 7 (noisy) would dominate everything and trial 8 (a confirmation) dominates trial 1: neither is
    # on the front, and trial 1 keeps its place
    assert [t.number for t in feasible_front(study)] == [0, 1, 6] == [t.number for t in pareto_trials(study)]
    assert study_hypervolume(study) == pytest.approx(study_hypervolume(make_study(tmp_path / "plain")))


def test_picks_are_the_knee_then_the_best_per_objective(tmp_path: Path) -> None:
    picks = recommended_picks(picks_study(tmp_path))
    # the baseline (trial 0) is on the front but is what picks are compared with, never a pick
    assert [(p.trial.number, p.roles) for p in picks] == [
        (6, ["knee", "lowest p95 latency", "lowest memory"]),
        (1, ["best accuracy"]),
    ]
    assert picks[0].label == "small_cnn int8 K2x1 b32" and not picks[0].confirmed
    confirmed = picks[1]
    assert confirmed.confirmation is not None and confirmed.confirmation.number == 8
    assert confirmed.metrics["latency_p95_ms"] == 15.0 and confirmed.first_metrics["latency_p95_ms"] == 20.0
    assert (
        with_first("latency_p95_ms", confirmed.metrics["latency_p95_ms"], confirmed.first_metrics["latency_p95_ms"])
        == "15.00 ms (search: 20.00)"
    )


def test_at_most_three_distinct_picks_and_ties_go_to_the_knee() -> None:
    assert knee_index([[0.9, 10.0], [0.8, 2.0], [0.5, 1.0]], ["maximize", "minimize"]) == 1
    assert knee_index([[1.0, 1.0], [1.0, 1.0]], ["minimize", "minimize"]) == 0


def test_export_knee_is_the_report_knee(tmp_path: Path) -> None:
    study = picks_study(tmp_path)
    # one knee formula (front.knee_index) for export --prefer knee and the report
    chosen = select_trial(study, requires=["memory_mb>=200"], prefer="knee")
    assert chosen.trial.number == recommended_picks(study)[0].trial.number == 6


def test_location_and_export_command(tmp_path: Path) -> None:
    study = picks_study(tmp_path / "runs")
    location = study_location(study)
    assert location == f"--run-dir {tmp_path / 'runs'}"
    assert export_command(6, location) == f"lepton-tune export --run-dir {tmp_path / 'runs'} --trial 6 --out bundle/"
