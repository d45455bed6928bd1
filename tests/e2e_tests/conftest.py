"""A tiny but real study: digits at 16x16, small_cnn trained 1 epoch, measured by the real engine."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

TINY_STUDY = """
name: tiny
dataset: {kind: digits, image_size: 16, channels: 3, split_seed: 0}
train: {epochs: 1, batch_size: 64, seed: 0}
search_space:
  params:
    backbone: small_cnn
    precision: {choices: [fp32, bf16]}
    shards: {low: 1, high: 2}
    threads_per_shard: 1
    batch_size: {choices: [1, 4]}
    pool_slots: 8
  constraints: ["shards * threads_per_shard <= cores"]
objectives: [accuracy, latency_p95_ms, memory_mb]
budgets: {accuracy: 0.2}
sampler: {name: random, seed: 1}
n_trials: 4
protocol: {warmup: 2, requests: 20, repeats: 2, concurrency: 2, probe_requests: 0, accuracy_samples: 200,
           noise_threshold: NOISE}
limits: {trial_timeout_s: 120}
"""
# The functional end-to-end tests must not depend on how busy a CI runner is (its 20-request
# windows last milliseconds); the noise guard itself is tested with real hogs in test_noise_search.py.
TINY_STUDY, TINY_STUDY_GUARDED = TINY_STUDY.replace("NOISE", "4.0"), TINY_STUDY.replace("NOISE", "0.1")


def run_cli(*args: str, cwd: Path, timeout: float = 600, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "MLFLOW_DISABLE_TELEMETRY": "true", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "lepton_tune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
    )


def json_of(proc: subprocess.CompletedProcess) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """Run the tiny study once for the whole session; tests read what it left."""
    root = tmp_path_factory.mktemp("tiny")
    (root / "tiny.yaml").write_text(TINY_STUDY)
    proc = run_cli(
        "search",
        "tiny.yaml",
        "--run-dir",
        "runs",
        "--json",
        "--quiet",
        cwd=root,
        env={"LEPTON_TUNE_CACHE": str(root / "cache")},
    )
    return {"root": root, "proc": proc, "summary": json_of(proc)}
