"""A real search over runtime x isolation: ONNX Runtime points are exported once, served by process
shards and by thread lanes, and scored on accuracy through the runtime that serves them."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.e2e_tests.conftest import json_of, run_cli

pytest.importorskip("onnxruntime")

STUDY = """
name: rt
dataset: {kind: digits, image_size: 16, channels: 3, split_seed: 0}
train: {epochs: 1, batch_size: 64, seed: 0}
search_space:
  params:
    backbone: small_cnn
    precision: fp32
    runtime: {choices: [eager, onnxruntime]}
    isolation: {choices: [process, thread]}
    shards: 2
    threads_per_shard: 1
    batch_size: 4
    max_wait_ms: 1.0
    pool_slots: 8
  constraints: ['isolation == "process" or runtime == "onnxruntime"']
objectives: [accuracy, throughput, memory_mb]
sampler: {name: grid}
baseline: false
n_trials: 3
protocol: {warmup: 2, requests: 20, repeats: 1, concurrency: 4, probe_requests: 0, accuracy_samples: 200, noise_threshold: 4.0}
"""


def test_runtime_and_isolation_are_searched_and_scored_through_the_serving_runtime(tmp_path: Path) -> None:
    (tmp_path / "rt.yaml").write_text(STUDY)
    summary = json_of(
        run_cli(
            "search",
            "rt.yaml",
            "--run-dir",
            "runs",
            "--json",
            "--quiet",
            "--no-tracking",
            cwd=tmp_path,
            env={"LEPTON_TUNE_CACHE": str(tmp_path / "cache")},
        )
    )
    assert summary["counts"]["complete"] == 3, summary
    study = optuna.load_study(study_name="rt", storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}")
    done = {
        (t.user_attrs["point"]["runtime"], t.user_attrs["point"]["isolation"]): t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert set(done) == {("eager", "process"), ("onnxruntime", "process"), ("onnxruntime", "thread")}
    accuracy = {key: t.user_attrs["metrics"]["accuracy"] for key, t in done.items()}
    assert len(set(accuracy.values())) == 1, accuracy  # one trained model, same outputs through every runtime
    for key in [("onnxruntime", "process"), ("onnxruntime", "thread")]:
        assert "export" in done[key].user_attrs["stage_seconds"], key
        assert done[key].user_attrs["metrics"]["throughput"] > 0
