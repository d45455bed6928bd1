"""Ctrl-C during a search: exit 130, the running trial is failed (not left RUNNING), the study resumes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import psutil
import pytest

from .conftest import TINY_STUDY

pytestmark = pytest.mark.slow


def test_ctrl_c_fails_the_running_trial_and_exits_130(tmp_path: Path) -> None:
    (tmp_path / "tiny.yaml").write_text(TINY_STUDY.replace("n_trials: 4", "n_trials: 50"))
    env = {**os.environ, "LEPTON_TUNE_CACHE": str(tmp_path / "cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen([sys.executable, "-m", "lepton_tune", "search", "tiny.yaml", "--run-dir", "runs",
                             "--quiet", "--no-report"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    storage = f"sqlite:///{tmp_path / 'runs' / 'study.db'}"
    deadline = time.time() + 300
    while time.time() < deadline:  # wait until a trial after the baseline is running
        time.sleep(1)
        try:
            trials = optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
        except Exception:  # noqa: BLE001 - the study may not exist yet
            continue
        if any(t.state == optuna.trial.TrialState.RUNNING and t.number >= 1 for t in trials):
            break
    else:
        proc.kill()
        pytest.fail("no trial started running")
    children = psutil.Process(proc.pid).children(recursive=True)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert any(t.state == optuna.trial.TrialState.FAIL for t in trials)
    gone, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
