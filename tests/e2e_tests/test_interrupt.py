"""Ctrl-C, SIGTERM or SIGHUP during a search: exit 130 / 143 / 129, the running trial is failed (not left
RUNNING), every process the search started ends, and the study resumes."""

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

from .conftest import TINY_STUDY, run_cli

pytestmark = pytest.mark.slow


def _default_signals() -> None:  # a suite run under nohup or in the background hands these down ignored
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)])
def test_a_stop_signal_fails_the_running_trial_and_exits_128_plus_signal(
    tmp_path: Path, sig: signal.Signals, code: int
) -> None:
    # trials of a few seconds (warm trials of the plain tiny study end in a fraction of one, so the signal
    # could land between two trials and find none running)
    study = TINY_STUDY.replace("n_trials: 4", "n_trials: 50").replace("requests: 20,", "requests: 3000,")
    (tmp_path / "tiny.yaml").write_text(study)
    env = {**os.environ, "LEPTON_TUNE_CACHE": str(tmp_path / "cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tune", "search", "tiny.yaml", "--run-dir", "runs", "--quiet", "--no-report"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
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
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-3000:]
    trials = optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
    assert not [t for t in trials if t.state == optuna.trial.TrialState.RUNNING]
    assert any(t.state == optuna.trial.TrialState.FAIL for t in trials)
    _, alive = psutil.wait_procs(children, timeout=20)
    assert not alive, f"left behind: {[p.pid for p in alive]}"
    if sig == signal.SIGTERM:  # the study resumes: one more trial on top of those finished
        finished = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)

        def counted(t: optuna.trial.FrozenTrial) -> bool:  # a confirmation re-measures a pick: not a trial of n_trials
            return t.state in finished and t.user_attrs.get("confirms") is None

        done = sum(counted(t) for t in trials)
        again = run_cli(
            "search",
            "tiny.yaml",
            "--run-dir",
            "runs",
            "--n-trials",
            str(done + 1),
            "--quiet",
            "--no-report",
            cwd=tmp_path,
            env={"LEPTON_TUNE_CACHE": str(tmp_path / "cache")},
        )
        assert again.returncode == 0, again.stderr[-3000:]
        resumed = optuna.load_study(study_name="tiny", storage=storage).get_trials(deepcopy=False)
        assert sum(counted(t) for t in resumed) == done + 1
