"""Figures are built from the data functions; tests check the data each figure carries."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from lepton_tune.report import (
    build_report,
    front_rows,
    importance_info,
    parallel_info,
    pareto_figures,
    pareto_info,
    plot_hypervolume,
    plot_parallel,
    write_report,
)
from lepton_tune.report._importance import importance_target
from tests.report_tests._studies import ROWS, empty_study, make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


@pytest.fixture
def study(tmp_path: Path) -> optuna.Study:
    return make_study(tmp_path)


def test_projections_for_each_pair_and_a_3d_view(study: optuna.Study) -> None:
    figures = pareto_figures(pareto_info(study))
    assert [t for t, _ in figures] == [
        "accuracy vs p95 latency",
        "accuracy vs memory",
        "p95 latency vs memory",
        "3-D view",
    ]
    fig = figures[0][1]
    traces = {t.name: t for t in fig.data}
    assert set(traces) == {"infeasible", "feasible", "Pareto front", "baseline"}
    assert list(traces["Pareto front"].customdata) == [0, 1, 6]
    assert list(traces["infeasible"].customdata) == [3] and list(traces["baseline"].customdata) == [0]
    assert list(traces["Pareto front"].x) == [0.95, 0.96, 0.85] and list(traces["Pareto front"].y) == [40, 20, 10]
    assert traces["baseline"].marker.symbol == "star" and "higher is better" in fig.layout.xaxis.title.text
    assert figures[-1][1].data[0].type == "scatter3d"


def test_two_objectives_have_no_3d_view(tmp_path: Path) -> None:
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", directions=["maximize", "minimize"])
    study.add_trial(optuna.trial.create_trial(values=[0.9, 10.0]))
    assert [t for t, _ in pareto_figures(pareto_info(study))] == ["objective_0 vs objective_1"]


def test_hypervolume_figure(study: optuna.Study) -> None:
    info = pareto_info(study)
    fig = plot_hypervolume(info)
    assert list(fig.data[0].x) == list(range(len(ROWS)))
    # the share of the box between the reference point (0.8, 50 ms, 530 MiB) and the best seen (0.96, 10 ms, 250 MiB)
    assert fig.data[0].y[-1] == pytest.approx(info.hypervolume / (0.16 * 40 * 280)) == pytest.approx(0.6077, abs=1e-4)
    assert info.hypervolume_share == pytest.approx(fig.data[0].y[-1])
    assert "reference point: accuracy 80.00%, latency_p95_ms 50.00 ms, memory_mb 530 MiB" in fig.layout.title.text


def test_importance_targets_rank_high_values_for_maximize() -> None:
    trial = optuna.trial.create_trial(values=[0.9, 3.0])
    assert importance_target(0, "maximize")(trial) == -0.9 and importance_target(1, "minimize")(trial) == 3.0


def test_importances_per_objective(study: optuna.Study) -> None:
    info = importance_info(study)
    assert set(info.importances) == {"accuracy", "latency_p95_ms", "memory_mb"} and info.notes == {}
    for values in info.importances.values():
        assert set(values) == {"backbone", "precision", "shards", "batch_size"}
        assert sum(values.values()) == pytest.approx(1.0)


def test_importances_need_two_complete_trials(tmp_path: Path) -> None:
    info = importance_info(make_study(tmp_path, rows=ROWS[:1]))
    assert info.importances == {} and info.notes["accuracy"] == "needs at least 2 complete trials, got 1"


def test_parallel_coordinates(study: optuna.Study) -> None:
    data = parallel_info(pareto_info(study))
    labels = [d.label for d in data.dimensions]
    assert labels == [
        "backbone",
        "prec",
        "K",
        "batch",
        "accuracy (%, higher is better)",
        "p95 latency (ms, lower is better)",
        "memory (MiB, lower is better)",
    ]
    assert data.trial_numbers == [0, 1, 2, 3, 6] and data.groups == [2, 2, 1, 0, 2]
    backbone = data.dimensions[0]
    assert backbone.ticktext == ["resnet18", "small_cnn"] and backbone.values == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert plot_parallel(data).data[0].type == "parcoords"


def test_front_table_rows(study: optuna.Study) -> None:
    rows = front_rows(pareto_info(study))
    assert [r["trial"] for r in rows] == [1, 0, 6]  # best accuracy first
    assert rows[1]["baseline"] is True and rows[0]["throughput"] == pytest.approx(50.0)
    assert rows[0]["point"]["precision"] == "bf16"


def test_report_is_one_self_contained_file(study: optuna.Study, tmp_path: Path) -> None:
    path = write_report(study, tmp_path / "out" / "report.html")
    text = path.read_text()
    assert path.parent.name == "out" and text.startswith("<!DOCTYPE html>")
    assert len(re.findall(r"plotly\.js v\d", text)) == 1  # the library banner: embedded exactly once
    assert "cdn.plot.ly" not in re.sub(
        r"<script type=\"text/javascript\">.*?</script>", "", text, count=1, flags=re.DOTALL
    )
    assert not re.search(r"<script[^>]+src=", text)
    assert text.count('class="plotly-graph-div"') == 7
    assert "<td>6</td>" in text and "Parallel coordinates" in text and "Parameter importance" in text
    assert not list(path.parent.glob(".*tmp"))


def test_report_of_an_empty_study(tmp_path: Path) -> None:
    report = build_report(empty_study(tmp_path))
    assert [t for t, _ in report.figures] == [
        "accuracy vs p95 latency",
        "accuracy vs memory",
        "p95 latency vs memory",
        "3-D view",
        "Front quality over trials",
        "Parameter importance",
    ]
    assert "No feasible trial yet" in report.to_html()
