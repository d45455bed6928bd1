"""What a first search prints when its output goes to files: a line per trial on stdout, only our lines on stderr."""

from __future__ import annotations

import re
from pathlib import Path

import optuna
import pytest

from .conftest import TINY_STUDY, run_cli

pytestmark = pytest.mark.slow

#: Lines a library prints by itself: logging records (MLflow, alembic, Optuna) and Python's warning format.
NOISE = [
    re.compile(p) for p in (r"\b(INFO|DEBUG)\b", r"^\[[IWD] \d{4}-", r"\.py:\d+: \w*Warning", r"^\s*warnings\.warn\(")
]


def test_a_fresh_search_logs_each_trial_and_nothing_foreign(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_STUDY.replace("n_trials: 4", "n_trials: 3"))
    proc = run_cli(
        "search",
        "tiny.yaml",
        "--run-dir",
        "runs",
        "--no-report",
        cwd=tmp_path,
        env={"LEPTON_TUNE_CACHE": str(tmp_path / "cache")},
    )  # stdout and stderr are pipes, not terminals
    assert proc.returncode == 0, proc.stderr[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}").trials
    lines = proc.stdout.splitlines()
    per_trial = [line for line in lines if re.match(r"\[\s*\d+:\d\d\] trial \d+", line)]
    assert sorted(int(re.search(r"trial (\d+)", line).group(1)) for line in per_trial) == [t.number for t in trials]
    assert all(re.search(r"small_cnn \w+ K\dx\d b\d", line) for line in per_trial), per_trial
    assert all("still running" in line for line in lines if line not in per_trial), lines
    noise = [line for line in proc.stderr.splitlines() if any(p.search(line) for p in NOISE)]
    assert noise == [], noise
    warned = [line for line in proc.stderr.splitlines() if "warning" in line.lower()]
    assert all(line.startswith("lepton-tune: warning: ") for line in warned), warned

    quiet = run_cli(
        "search",
        "tiny.yaml",
        "--run-dir",
        "runs",
        "--no-report",
        "--n-trials",
        str(len(trials) + 1),
        "--quiet",
        cwd=tmp_path,
        env={"LEPTON_TUNE_CACHE": str(tmp_path / "cache")},
    )
    assert quiet.returncode == 0, quiet.stderr[-3000:]
    assert quiet.stdout == ""
