"""`lepton-tune search` end to end on the tiny study: real training, real engine, real storage."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import json_of, run_cli

pytestmark = pytest.mark.slow


def test_search_records_a_front(tiny_run: dict) -> None:
    summary = tiny_run["summary"]
    assert summary["study_name"] == "tiny"
    assert summary["storage"].startswith("sqlite:///") and summary["storage"].endswith("runs/study.db")
    counts = summary["counts"]
    assert counts["complete"] + counts["infeasible"] + counts["failed"] >= 4
    assert counts["failed"] == 0, tiny_run["proc"].stderr[-3000:]
    assert summary["baseline"] and summary["baseline"][0]["params"]["shards"] == 1
    assert summary["pareto"], "a feasible front"
    for point in summary["pareto"]:
        values = point["values"]
        assert 0.2 <= values["accuracy"] <= 1.0
        assert 0 < values["latency_p50_ms"] <= values["latency_p95_ms"] <= values["latency_p99_ms"]
        assert values["throughput"] > 0 and values["memory_mb"] > 10 and values["cost_per_million"] > 0


def test_the_baseline_is_the_in_process_call_and_every_ratio_is_against_it(tiny_run: dict) -> None:
    import optuna

    base = tiny_run["summary"]["baseline"][0]
    assert base["baseline_kind"] == "in-process" and base["baseline_form"] in ("serial", "concurrent")
    assert base["values"]["speedup"] == 1.0 and base["values"]["memory_ratio"] == 1.0
    study = optuna.load_study(study_name="tiny", storage=tiny_run["summary"]["storage"])
    baseline = next(t for t in study.trials if t.user_attrs.get("baseline"))
    forms = baseline.user_attrs["forms"]
    assert set(forms) == {"serial", "concurrent"}  # both plain forms were measured, the faster kept
    kept = max(forms, key=lambda f: forms[f]["metrics"]["throughput"])
    assert kept == base["baseline_form"]
    assert baseline.user_attrs["torch_threads"] >= 1 and "accuracy" in base["values"]
    for point in tiny_run["summary"]["pareto"]:
        values = point["values"]
        if point["trial"] != base["trial"]:
            assert values["speedup"] == pytest.approx(values["throughput"] / base["values"]["throughput"])
            assert values["memory_ratio"] == pytest.approx(values["memory_mb"] / base["values"]["memory_mb"])
    shown = run_cli("show", "--run-dir", "runs", cwd=tiny_run["root"])
    assert "ratios vs the in-process baseline" in shown.stdout and "baseline, in-process" in shown.stdout


def test_show_json_matches_search(tiny_run: dict) -> None:
    shown = json_of(run_cli("show", "--run-dir", "runs", "--json", cwd=tiny_run["root"]))
    assert [p["trial"] for p in shown["pareto"]] == [p["trial"] for p in tiny_run["summary"]["pareto"]]
    assert shown["counts"] == tiny_run["summary"]["counts"]


def test_optuna_cli_reads_the_study(tiny_run: dict) -> None:
    storage = tiny_run["summary"]["storage"]
    proc = subprocess.run(
        [
            str(Path(sys.executable).parent / "optuna"),
            "best-trials",
            "--study-name",
            "tiny",
            "--storage",
            storage,
            "-f",
            "json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert '"number"' in proc.stdout


def test_resume_does_not_redo(tiny_run: dict) -> None:
    root = tiny_run["root"]
    again = json_of(
        run_cli(
            "search",
            "tiny.yaml",
            "--run-dir",
            "runs",
            "--json",
            "--quiet",
            cwd=root,
            env={"LEPTON_TUNE_CACHE": str(root / "cache")},
        )
    )
    before = tiny_run["summary"]["counts"]
    assert again["counts"] == before, "the study already has n_trials: nothing is re-run"
