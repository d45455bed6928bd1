"""`lepton-tune ui` ends the MLflow server and its job consumers on SIGTERM and SIGHUP, and when it is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

from tests.report_tests._studies import ROWS, make_study
from tests.tracking_tests._mlflow_store import fresh_store

pytestmark = [
    pytest.mark.slow,
    pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _up(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
            return bytes(response.read()) == b"OK"
    except OSError:
        return False


def _default_signals() -> None:  # a suite run under nohup would hand SIGHUP down ignored
    signal.signal(signal.SIGHUP, signal.SIG_DFL)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from lepton_tune.tracking import MLflowTracker

    run_dir = tmp_path_factory.mktemp("ui-signals") / "run"
    study = make_study(run_dir, rows=ROWS[:1])
    tracker = MLflowTracker(fresh_store(tmp_path_factory, run_dir), "demo", run_dir=run_dir)
    tracker.start(study)
    tracker.finish(study)
    return run_dir


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGHUP, 129), (signal.SIGKILL, -9)])
def test_ui_stops_everything_it_started(run_dir: Path, sig: signal.Signals, code: int) -> None:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tune", "ui", "--run-dir", str(run_dir), "--port", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
        env=dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true"),
    )
    started: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not _up(port):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            time.sleep(0.5)
        assert _up(port), "the MLflow UI did not answer /health within 120 s"
        time.sleep(2.0)  # the job consumers start next to the server
        started = psutil.Process(proc.pid).children(recursive=True)
        commands = " ".join(" ".join(p.cmdline()) for p in started)
        assert "mlflow" in commands and "huey_consumer" in commands, commands
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == code
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    _, alive = psutil.wait_procs(started, timeout=10)
    for leftover in alive:
        leftover.kill()
    assert not alive, f"left behind: {[(p.pid, p.cmdline()[:4]) for p in alive]}"
    assert not _up(port)
    with socket.socket() as again:  # the port is free for the next server
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))
