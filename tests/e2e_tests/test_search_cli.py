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


def test_show_json_matches_search(tiny_run: dict) -> None:
    shown = json_of(run_cli("show", "--run-dir", "runs", "--json", cwd=tiny_run["root"]))
    assert [p["trial"] for p in shown["pareto"]] == [p["trial"] for p in tiny_run["summary"]["pareto"]]
    assert shown["counts"] == tiny_run["summary"]["counts"]


def test_optuna_cli_reads_the_study(tiny_run: dict) -> None:
    storage = tiny_run["summary"]["storage"]
    proc = subprocess.run([str(Path(sys.executable).parent / "optuna"), "best-trials", "--study-name", "tiny",
                           "--storage", storage, "-f", "json"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert '"number"' in proc.stdout


def test_resume_does_not_redo(tiny_run: dict) -> None:
    root = tiny_run["root"]
    again = json_of(run_cli("search", "tiny.yaml", "--run-dir", "runs", "--json", "--quiet", cwd=root,
                            env={"LEPTON_TUNE_CACHE": str(root / "cache")}))
    before = tiny_run["summary"]["counts"]
    assert again["counts"] == before, "the study already has n_trials: nothing is re-run"
