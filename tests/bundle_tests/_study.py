"""One tiny real study and its exported bundle, shared by the bundle and export/verify/predict CLI tests.

Built once per test session under the session's base temp dir (the second caller reuses it): a
digits study at 16x16, small_cnn trained 2 epochs, two measured trials, then
``lepton-tune export --require`` into ``bundle/``.
"""

from __future__ import annotations

import fcntl
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

STUDY = """
name: bundled
dataset: {kind: digits, image_size: 16, channels: 3, split_seed: 0}
train: {epochs: 2, batch_size: 64, seed: 0}
search_space:
  params:
    backbone: small_cnn
    precision: {choices: [fp32, bf16]}
    shards: 1
    threads_per_shard: 1
    batch_size: {choices: [1, 4]}
    pool_slots: 8
objectives: [accuracy, latency_p95_ms, memory_mb]
budgets: {accuracy: 0.2}
sampler: {name: random, seed: 1}
n_trials: 2
baseline: false
# noise_threshold: the bundle tests check files and tolerances, not how busy a CI runner is (tests/measure_tests/test_noise.py)
protocol: {warmup: 2, requests: 20, repeats: 2, concurrency: 2, probe_requests: 0, accuracy_samples: 200, noise_threshold: 4.0}
limits: {trial_timeout_s: 120}
"""


@dataclass(frozen=True)
class TinyStudy:
    root: Path
    run_dir: Path
    bundle: Path
    env: dict[str, str]
    export_stderr: str


def cli(*args: str, cwd: Path, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run ``python -m lepton_tune ARGS`` in a fresh process."""
    return subprocess.run(
        [sys.executable, "-m", "lepton_tune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        check=False,
    )


def study_env(root: Path) -> dict[str, str]:
    # A private measurement lock: other studies running on this shared host must not stall the tests.
    return {
        **os.environ,
        "LEPTON_TUNE_CACHE": str(root / "cache"),
        "LEPTON_TUNE_LOCK": str(root / "measure.lock"),
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }


def tiny_study(factory: pytest.TempPathFactory) -> TinyStudy:
    # LEPTON_TEST_STUDY_DIR keeps the study between sessions while working on these tests.
    root = Path(os.environ.get("LEPTON_TEST_STUDY_DIR") or factory.getbasetemp() / "bundle-study")
    root.mkdir(exist_ok=True)
    env = study_env(root)
    with open(root / ".build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        done = root / "done.json"
        if not done.exists():
            (root / "study.yaml").write_text(STUDY)
            proc = cli("search", "study.yaml", "--run-dir", "runs", "--json", "--quiet", cwd=root, env=env)
            assert proc.returncode == 0, proc.stderr[-3000:]
            proc = cli(
                "export",
                "--run-dir",
                "runs",
                "--require",
                "accuracy>=0.5",
                "--prefer",
                "latency_p95_ms",
                "--out",
                "bundle",
                cwd=root,
                env=env,
            )
            assert proc.returncode == 0, proc.stderr[-3000:]
            done.write_text(json.dumps({"export_stderr": proc.stderr}))
    stderr = json.loads((root / "done.json").read_text())["export_stderr"]
    return TinyStudy(root=root, run_dir=root / "runs", bundle=root / "bundle", env=env, export_stderr=stderr)
