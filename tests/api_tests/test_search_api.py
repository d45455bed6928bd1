"""``lepton_tune.search`` and friends: the library does what the CLI does, with typed results."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import lepton_tune as lt
from lepton_tune.exceptions import ConfigError, SelectionError
from tests.e2e_tests.conftest import TINY_STUDY

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def searched(tmp_path_factory: pytest.TempPathFactory) -> tuple[lt.SearchResult, Path]:
    root = tmp_path_factory.mktemp("api")
    (root / "tiny.yaml").write_text(TINY_STUDY)
    result = lt.search(root / "tiny.yaml", n_trials=3, run_dir=root / "runs", progress=False)
    return result, root


def test_search_returns_the_front_as_typed_points(searched: tuple[lt.SearchResult, Path]) -> None:
    result, _ = searched
    assert result.n_trials == 3 and result.objectives == ["accuracy", "latency_p95_ms", "memory_mb"]
    assert result.pareto, "the tiny study always has a feasible point (accuracy budget 0.2)"
    for point in result.pareto:
        assert isinstance(point, lt.Point) and point.label.startswith("small_cnn")
        assert {"accuracy", "latency_p95_ms", "memory_mb", "throughput"} <= set(point.metrics)
        assert isinstance(point.record, lt.TrialRecord) and point.record.status == "ok"
    baseline = result.baseline("small_cnn")
    assert baseline is not None and baseline.baseline and baseline.record.baseline_kind == "in-process"
    assert result.baseline("resnet18") is None
    assert all(p.confirmed_by is not None for p in result.picks), "search confirms its picks like the CLI"
    assert result.report_path is not None and result.report_path.is_file()
    assert "SearchResult(study='tiny'" in repr(result)


def test_search_logs_to_mlflow_like_the_cli(searched: tuple[lt.SearchResult, Path]) -> None:
    from mlflow.tracking import MlflowClient

    result, root = searched
    client = MlflowClient(f"sqlite:///{(root / 'runs' / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("tiny")
    runs = client.search_runs([experiment.experiment_id], max_results=100)
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId")]
    every = result.study.get_trials(deepcopy=False)
    assert len(children) == len(every), "one child run per trial: baseline, trials and confirmations"
    parents = [r for r in runs if not r.data.tags.get("mlflow.parentRunId")]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"


def test_select_export_load_and_verify(searched: tuple[lt.SearchResult, Path]) -> None:
    result, root = searched
    chosen = result.select("accuracy>=0.2", prefer="throughput")
    assert "best throughput" in chosen.reason and chosen.trial in {p.trial for p in result.pareto}
    with pytest.raises(SelectionError, match="no front point meets accuracy>=1.5"):
        result.select(["accuracy>=1.5"])
    exported = result.export(root / "bundle", trial=chosen.trial)
    assert exported.bundle.is_dir() and exported.trial == chosen.trial and exported.confirmed_by is not None
    assert json.dumps(exported.as_dict())  # what `export --json` prints
    again = lt.load_study(run_dir=root / "runs")
    assert [p.trial for p in again.pareto] == [p.trial for p in result.pareto]
    checked = lt.verify(
        exported.bundle,
        tolerances={"latency_p50_ms": 100.0, "latency_p95_ms": 100.0, "throughput": 0.99, "memory_mb": 1.0},
        noise_threshold=4.0,
    )
    assert checked.ok is True and checked.exit_code == 0, checked.as_dict()


def test_bad_study_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(TINY_STUDY.replace("repeats: 2", "repeats: 0"))
    with pytest.raises(ConfigError, match="repeats"):
        lt.search(tmp_path / "bad.yaml", run_dir=tmp_path / "runs", progress=False)
    assert not (tmp_path / "runs").exists()
