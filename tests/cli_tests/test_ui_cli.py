"""`lepton-tune ui`: a real MLflow server on 127.0.0.1 for a run directory, stopped by Ctrl-C."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from lepton_tune._cli import ui
from lepton_tune.cli import main
from lepton_tune.exceptions import ConfigError, StorageError
from tests.report_tests._studies import ROWS, make_study
from tests.tracking_tests._mlflow_store import fresh_store

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> bytes:
    with urllib.request.urlopen(url, timeout=5) as response:
        return bytes(response.read())


def _post(url: str, body: dict) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return bytes(response.read())


@pytest.mark.slow
def test_ui_lists_the_experiment_and_stops_on_ctrl_c(tmp_path: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from lepton_tune.tracking import MLflowTracker

    run_dir = tmp_path / "run"
    study = make_study(run_dir, rows=ROWS[:2])
    tracker = MLflowTracker(fresh_store(tmp_path_factory, run_dir), "demo", run_dir=run_dir)
    tracker.start(study)
    for trial in study.trials:
        tracker(study, trial)
    tracker.finish(study)
    port = _free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tune", "ui", "--run-dir", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == f"MLflow UI for {run_dir}: http://127.0.0.1:{port}"
        deadline, up = time.monotonic() + 120, False
        while time.monotonic() < deadline and not up:
            try:
                up = _get(f"http://127.0.0.1:{port}/health") == b"OK"
            except OSError:
                assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
                time.sleep(0.5)
        assert up, "the MLflow UI did not answer /health within 120 s"
        listed = json.loads(_get(f"http://127.0.0.1:{port}/api/2.0/mlflow/experiments/search?max_results=10"))
        (experiment,) = [e for e in listed["experiments"] if e["name"] == "demo"]
        runs = json.loads(
            _post(
                f"http://127.0.0.1:{port}/api/2.0/mlflow/runs/search", {"experiment_ids": [experiment["experiment_id"]]}
            )
        )["runs"]
        assert sorted(r["info"]["run_name"] for r in runs) == [
            "demo",
            "t0 small_cnn fp32 K1x1 b1 baseline",
            "t1 resnet18 bf16 K2x1 b8",
        ]
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
    with pytest.raises(OSError):
        _get(f"http://127.0.0.1:{port}/health")


def test_ui_without_store_is_an_error(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--run-dir", str(tmp_path)]) == 1
    assert "no MLflow store at" in capfd.readouterr().err


def test_ui_port_in_use(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mlflow.db").write_bytes(b"")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["ui", "--run-dir", str(tmp_path), "--port", str(port)]) == 2
    assert f"--port: {port} is already in use on 127.0.0.1. Pass another --port." in capfd.readouterr().err


def test_ui_bad_port(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["ui", "--run-dir", str(tmp_path), "--port", "70000"]) == 2
    assert "--port: must be between 1 and 65535, got 70000" in capfd.readouterr().err


def _args(run_dir: Path, port: int) -> argparse.Namespace:
    return argparse.Namespace(run_dir=run_dir, port=port, study=None, open=False)


def test_ui_errors_name_the_problem(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"no MLflow store at .*mlflow\.db; run 'lepton-tune search' first"):
        ui.run(_args(tmp_path, _free_port()))
    with pytest.raises(ConfigError, match=r"--port: must be between 1 and 65535, got 0\. Pass another --port\."):
        ui.run(_args(tmp_path, 0))


def test_ui_server_that_cannot_start_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "mlflow.db").write_text("not a database")
    with pytest.raises(StorageError, match=r"the MLflow server for .* exited with code 1; see its output above"):
        ui.run(_args(tmp_path, _free_port()))


def test_server_command_binds_localhost_with_the_run_dir_store(tmp_path: Path) -> None:
    command = ui.server_command(tmp_path, 5123)
    assert command[command.index("--host") + 1] == "127.0.0.1" and command[command.index("--port") + 1] == "5123"
    assert command[command.index("--backend-store-uri") + 1] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    assert command[command.index("--default-artifact-root") + 1] == str(tmp_path / "mlartifacts")


@pytest.mark.slow
def test_ui_open_launches_the_browser_on_the_trials_table(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    from lepton_tune.tracking import MLflowTracker

    run_dir = tmp_path / "run"
    study = make_study(run_dir, rows=ROWS[:2])
    tracker = MLflowTracker(fresh_store(tmp_path_factory, run_dir), "demo", run_dir=run_dir)
    tracker.start(study)
    for trial in study.trials:
        tracker(study, trial)
    tracker.finish(study)
    opened = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" >> {opened}\n')
    browser.chmod(0o755)
    port = _free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true", BROWSER=f"{browser} %s")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tune", "ui", "--run-dir", str(run_dir), "--port", str(port), "--open"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(3)]
        trials = lines[2].rsplit(": ", 1)[1]
        assert lines[2].startswith("every trial, sorted by accuracy: ") and "viewStateShareKey=lepton-trials" in trials
        deadline = time.monotonic() + 120
        while not opened.exists() and time.monotonic() < deadline:
            assert proc.poll() is None
            time.sleep(0.5)
        assert opened.read_text().split() == [trials]
        assert _get(f"http://127.0.0.1:{port}/health") == b"OK"  # opened only once the server answers
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
