"""`lepton-tune ui` in a real headless Chromium: the printed links open the runs table ready to compare.

Drives Debian's ``chromium`` (installed by ``.ci/run``) against the real MLflow server that
``lepton-tune ui`` starts over a finished tiny study, and reads the rendered DOM: no click happens.
The screenshots are kept in the test's temp dir (``ui-trials.png``, ``ui-front.png``, ``ui-charts.png``).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import warnings
from pathlib import Path

import pytest

from lepton_tune.tracking import MLflowTracker, TrackingWarning
from tests.report_tests._studies import ROWS, RowObjective, empty_study, enqueue_rows, trial_record
from tests.tracking_tests._mlflow_store import fresh_store

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: the trials of ROWS as the runs table names them; the front is 0, 1 and 6
NAMES = [
    "t0 small_cnn fp32 K1x1 b1 baseline",
    "t1 resnet18 bf16 K2x1 b8",
    "t2 resnet18 fp32 K1x1 b8",
    "t3 resnet18 fp32 K2x1 b1",
    "t4 small_cnn int8 K4x1 b32",
    "t5 resnet18 int8 K1x1 b32",
    "t6 small_cnn int8 K2x1 b32",
]
FRONT = [NAMES[0], NAMES[1], NAMES[6]]
COLUMNS = [
    "metrics.`accuracy`",
    "metrics.`latency_p95_ms`",
    "metrics.`memory_mb`",
    "metrics.`speedup`",
    "metrics.`memory_ratio`",
    "params.`backbone`",
    "params.`precision`",
    "params.`shards`",
    "params.`batch_size`",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _finished_study(run_dir: Path, uri: str) -> None:
    study = empty_study(run_dir)
    study.set_user_attr(
        "spec",
        {
            "search_space": {
                "params": {
                    "backbone": {"choices": ["small_cnn", "resnet18"]},
                    "precision": {"choices": ["fp32", "bf16", "int8"]},
                    "shards": {"low": 1, "high": 4},
                    "batch_size": {"choices": [1, 8, 32]},
                }
            }
        },
    )
    rows = []
    for state, params, values, extra in ROWS:  # every measured trial also holds its ratios to the baseline
        measured = trial_record(params, values, extra, 0)["metrics"]
        if measured:
            measured.update(speedup=40.0 / measured["latency_p95_ms"], memory_ratio=measured["memory_mb"] / 300.0)
        rows.append((state, params, values, {**extra, "metrics": measured} if measured else extra))
    enqueue_rows(study, rows)
    tracker = MLflowTracker(uri, "demo", run_dir=run_dir)
    with warnings.catch_warnings():
        warnings.simplefilter("error", TrackingWarning)
        tracker.start(study)
        study.optimize(RowObjective(rows), n_trials=len(rows), catch=(Exception,), callbacks=[tracker])
        tracker.finish(study)


def _chromium(url: str, profile: Path, *extra: str) -> str:
    """Render ``url`` headless; return stdout (the DOM for ``--dump-dom``). Every process it starts ends."""
    assert CHROMIUM is not None
    command = [
        CHROMIUM,
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=20000",
        "--window-size=3200,1200",
        *extra,
        url,
    ]
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, start_new_session=True
    )
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # renderer and zygote helpers of this browser only
        except ProcessLookupError:
            pass
        proc.wait()
    return out


def _cells(dom: str) -> set[str]:
    """The run names the runs table shows (each a link to its run page)."""
    return set(re.findall(r'href="#/experiments/\d+/runs/[0-9a-f]+"[^>]*><span[^>]*>([^<]+)</span>', dom))


def _wait_up(proc: subprocess.Popen[str], port: int, within: float = 120.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        assert proc.poll() is None, "lepton-tune ui exited before the server answered"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=5) as response:
                if response.read() == b"OK":
                    return
        except OSError:
            time.sleep(0.5)
    raise AssertionError(f"the MLflow UI did not answer /health within {within:.0f} s")


@pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (Debian: apt-get install -y chromium; .ci/run installs it where apt-get exists)",
)
def test_printed_links_show_every_trial_and_exactly_the_front(
    tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    run_dir = tmp_path / "run"
    _finished_study(run_dir, fresh_store(tmp_path_factory, run_dir))
    port = _free_port()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY="true")
    proc = subprocess.Popen(
        [sys.executable, "-m", "lepton_tune", "ui", "--run-dir", str(run_dir), "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
    )
    try:
        assert proc.stdout is not None
        lines = [proc.stdout.readline().strip() for _ in range(6)]
        assert lines[0] == f"MLflow UI for {run_dir}: http://127.0.0.1:{port}" and lines[1] == "Study demo:"
        links = dict(line.rsplit(": ", 1) for line in lines[2:])
        trials = links["every trial, sorted by accuracy"]
        front = links['Pareto front (tags.pareto = "true")']
        _wait_up(proc, port)

        dom = _chromium(trials, tmp_path / "profile-trials", "--dump-dom")
        (tmp_path / "ui-trials.html").write_text(dom)  # kept with the screenshots for a failing run
        assert _cells(dom) == set(NAMES), "every trial is a row (not folded under the parent); the parent is not"
        missing = [c for c in COLUMNS if f'col-id="{c}"' not in dom]
        assert not missing, f"columns missing from the runs table: {missing}"
        assert "<strong>7</strong> matching runs" in dom and "Sort: accuracy" in dom
        assert "Model training" in dom and "lepton-tune: every trial" in dom

        dom = _chromium(front, tmp_path / "profile-front", "--dump-dom")
        assert _cells(dom) == set(FRONT)
        assert "<strong>3</strong> matching runs" in dom

        dom = _chromium(links["study summary (parent run)"], tmp_path / "profile-parent", "--dump-dom")
        assert "lepton-tune study" in dom and "Reading the child runs" in dom  # the description
        assert "best_accuracy" in dom and "hypervolume" in dom and "Model training" in dom

        for name, url in (("trials", trials), ("front", front), ("charts", links["trade-off charts"])):
            _chromium(url, tmp_path / f"profile-shot-{name}", f"--screenshot={tmp_path / f'ui-{name}.png'}")
            assert (tmp_path / f"ui-{name}.png").stat().st_size > 10_000
    finally:
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    assert code == 130
