"""Progress lines for logs: one per finished trial, a heartbeat while a trial runs long; the short point label."""

from __future__ import annotations

import io
import re
import time

import optuna
from optuna.distributions import IntDistribution

from lepton_tune._api import ProgressCallback, trial_line
from lepton_tune._cli.search import _progress
from lepton_tune.front import short_label

POINT = {
    "backbone": "resnet18",
    "precision": "int8",
    "runtime": "onnxruntime",
    "isolation": "process",
    "shards": 2,
    "threads_per_shard": 1,
    "batch_size": 8,
    "mode": "replica",
    "pin": False,
    "max_wait_ms": 0.0,
    "pool_slots": 16,
    "cache_entries": 0,
    "share_weights": False,
    "device": "cpu",
    "train.lr": 0.003,
}


def test_short_label_lists_only_what_matters() -> None:
    assert short_label(POINT) == "resnet18 int8 ort K2x1 b8"
    assert (
        short_label(
            {**POINT, "runtime": "eager", "mode": "pipeline", "pin": True, "max_wait_ms": 2.5, "device": "cuda:0"}
        )
        == "resnet18 int8 K2x1 b8 pipe pin wait2.5ms cuda:0"
    )
    assert short_label({**POINT, "isolation": "thread"}) == "resnet18 int8 ort/thread K2x1 b8"


def _trial(number: int, state: optuna.trial.TrialState, **attrs: object) -> optuna.trial.FrozenTrial:
    trial = optuna.trial.create_trial(
        state=state,
        values=[0.9, 4.2] if state.name == "COMPLETE" else None,
        params={"shards": 2},
        distributions={"shards": IntDistribution(1, 2)},
        user_attrs={"point": POINT, **attrs},
    )
    trial.number = number
    return trial


def test_trial_line_names_point_objectives_status_and_reason() -> None:
    ok = _trial(
        3, optuna.trial.TrialState.COMPLETE, lepton_status="ok", metrics={"accuracy": 0.9123, "latency_p95_ms": 4.2}
    )
    assert (
        trial_line(ok, ["accuracy", "latency_p95_ms"])
        == "trial 3  resnet18 int8 ort K2x1 b8  accuracy=91.23% latency_p95_ms=4.20  ok"
    )
    failed = _trial(
        4,
        optuna.trial.TrialState.FAIL,
        lepton_status="failed",
        reason="TrialLimitError: trial time limit exceeded\nmore",
    )
    assert (
        trial_line(failed, ["accuracy"])
        == "trial 4  resnet18 int8 ort K2x1 b8  failed: TrialLimitError: trial time limit exceeded"
    )


def test_a_long_trial_writes_a_heartbeat_line() -> None:
    log = io.StringIO()
    progress = ProgressCallback(None, 4, bar=False, lines=log, heartbeat_s=0.5)
    progress.training({"epoch": 2, "epochs": 20, "backbone": "small_cnn"})
    with progress:
        time.sleep(1.8)
    beats = log.getvalue().splitlines()
    assert beats and all(
        re.fullmatch(
            r"\[\s*0:0\d\]   still running: \d+ s into a trial "
            r"\(training small_cnn epoch 2/20\)",
            b,
        )
        for b in beats
    ), beats


class _Stream(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


def test_progress_mode_follows_the_outputs(monkeypatch) -> None:
    import argparse

    from rich.console import Console

    def mode(*, stdout_tty: bool, stderr_tty: bool, json: bool = False, quiet: bool = False) -> tuple[bool, bool]:
        out, err = _Stream(stdout_tty), _Stream(stderr_tty)
        monkeypatch.setattr("sys.stdout", out)
        monkeypatch.setattr("sys.stderr", err)
        console = Console(file=err, force_terminal=stderr_tty)
        progress = _progress(argparse.Namespace(json=json, quiet=quiet, n_trials=4), console)
        return (not progress.progress.disable, progress.lines is not None)

    assert mode(stdout_tty=True, stderr_tty=True) == (True, False)  # a terminal: the bar only
    assert mode(stdout_tty=False, stderr_tty=False) == (False, True)  # a log: lines only
    assert mode(stdout_tty=False, stderr_tty=True) == (True, True)  # stdout to a file, bar on the terminal
    assert mode(stdout_tty=False, stderr_tty=True, json=True) == (True, False)  # JSON owns stdout; stderr has the bar
    assert mode(stdout_tty=False, stderr_tty=False, quiet=True) == (False, False)
