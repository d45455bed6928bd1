"""pareto_info and the hypervolume on real SQLite studies (docs/trial-record.md)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
from optuna.trial import TrialState

from lepton_tune.front import to_loss
from lepton_tune.front._hypervolume import _slice_hypervolume
from lepton_tune.report import (
    hypervolume,
    objective_values,
    pareto_info,
    reference_point,
    study_hypervolume,
)
from tests.report_tests._studies import ROWS, empty_study, make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_groups_counts_and_front(tmp_path: Path) -> None:
    info = pareto_info(make_study(tmp_path))
    assert info.objectives == ["accuracy", "latency_p95_ms", "memory_mb"]
    assert info.directions == ["maximize", "minimize", "minimize"]
    assert [t.number for t in info.front] == [0, 1, 6]
    assert [t.number for t in info.feasible] == [2]
    assert [t.number for t in info.infeasible] == [3]  # budget missed; the pruned trial has no values
    assert [t.number for t in info.baseline] == [0]
    assert info.counts == {
        "complete": 5,
        "feasible": 4,
        "front": 3,
        "infeasible": 2,
        "noisy": 0,
        "failed": 1,
        "running": 0,
        "confirmations": 0,
    }
    assert info.values[1] == [0.96, 20.0, 400.0] and 4 not in info.values and 5 not in info.values


def test_front_matches_optuna_best_trials(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    assert [t.number for t in pareto_info(study).front] == sorted(t.number for t in study.best_trials)


def test_reference_point_uses_budgets_then_worst_plus_margin(tmp_path: Path) -> None:
    info = pareto_info(make_study(tmp_path))
    # accuracy and latency have budgets (0.8, 50); memory: worst 500 + 0.1 * (500 - 200)
    assert info.reference_point == pytest.approx([0.8, 50.0, 530.0])


def test_hypervolume_value_and_history(tmp_path: Path) -> None:
    info = pareto_info(make_study(tmp_path))
    losses = to_loss(np.array([[0.95, 40, 300], [0.96, 20, 400], [0.90, 45, 500], [0.85, 10, 250]]), info.directions)
    ref = to_loss(np.array(info.reference_point), info.directions)
    assert info.hypervolume == pytest.approx(_slice_hypervolume(losses, ref)) == pytest.approx(1089.0)
    numbers = [n for n, _ in info.hypervolume_history]
    values = [v for _, v in info.hypervolume_history]
    assert numbers == list(range(len(ROWS)))
    assert values == sorted(values) and values[0] == pytest.approx(0.15 * 10 * 230)
    assert values[2] == values[1] and values[-1] > values[-2]  # dominated / failed trials add nothing


def test_study_hypervolume_equals_info(tmp_path: Path) -> None:
    study = make_study(tmp_path)
    assert study_hypervolume(study) == pytest.approx(pareto_info(study).hypervolume)


@pytest.mark.parametrize("dims", [1, 2, 3, 4])
def test_optuna_hypervolume_agrees_with_slicing(dims: int) -> None:
    rng = np.random.default_rng(dims)
    points = rng.random((12, dims))
    ref = np.ones(dims) * 1.1
    assert hypervolume(points, ref) == pytest.approx(_slice_hypervolume(points, ref))


def test_points_outside_the_reference_add_nothing() -> None:
    assert hypervolume(np.array([[2.0, 0.0], [0.5, 0.5]]), np.array([1.0, 1.0])) == pytest.approx(0.25)
    assert hypervolume(np.empty((0, 2)), np.array([1.0, 1.0])) == 0.0


def test_reference_point_without_budget_or_spread() -> None:
    ref = reference_point(np.array([[5.0, -2.0], [5.0, -2.0]]), ["a", "b"], ["minimize", "maximize"])
    assert ref.tolist() == pytest.approx([5.5, -1.8])
    assert reference_point(np.array([[0.0]]), ["a"], ["minimize"]).tolist() == [0.1]


def test_empty_study_and_no_feasible_trial(tmp_path: Path) -> None:
    info = pareto_info(empty_study(tmp_path / "a"))
    assert info.front == [] and info.hypervolume == 0.0 and info.reference_point is None
    info = pareto_info(make_study(tmp_path / "b", rows=[ROWS[3], ROWS[4]]))
    assert info.front == [] and [t.number for t in info.infeasible] == [0] and info.hypervolume == 0.0


def test_pruned_trial_with_full_metrics_is_plotted_infeasible(tmp_path: Path) -> None:
    probe = (TrialState.PRUNED, ROWS[1][1], (0.99, 5.0, 100.0), {"lepton_status": "infeasible", "reason": "probe"})
    study = make_study(tmp_path, rows=[ROWS[0], probe])
    info = pareto_info(study)
    assert [t.number for t in info.infeasible] == [1] and info.values[1] == [0.99, 5.0, 100.0]
    assert objective_values(study.trials[1], info.objectives) == [0.99, 5.0, 100.0]


def test_two_objective_study(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", directions=["maximize", "minimize"])
    for acc, lat in [(0.9, 10.0), (0.95, 20.0), (0.8, 30.0)]:
        study.add_trial(optuna.trial.create_trial(values=[acc, lat]))
    info = pareto_info(study)
    assert info.objectives == ["objective_0", "objective_1"] and [t.number for t in info.front] == [0, 1]
