"""Shared test set-up: keep every cache, store and telemetry switch inside the test's tmp dirs."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")

# A suite started as a background job of a non-interactive shell (`bash .ci/run &`) inherits SIGINT
# ignored, and so would every process it starts: Python then installs no KeyboardInterrupt handler
# and the Ctrl-C tests would send their SIGINT into the void. Give SIGINT its normal meaning here;
# children get the default disposition at exec.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test session gets its own model cache unless a test sets another."""
    if "LEPTON_TUNE_CACHE" not in os.environ or not os.environ["LEPTON_TUNE_CACHE"].startswith("/tmp"):
        monkeypatch.setenv("LEPTON_TUNE_CACHE", str(tmp_path_factory.getbasetemp() / "model-cache"))


@pytest.fixture
def repo() -> Path:
    return REPO
