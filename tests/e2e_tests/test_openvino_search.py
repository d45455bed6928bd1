"""A real search with runtime openvino: its points are converted once, served by process shards and by
thread lanes, scored on accuracy through OpenVINO, recorded with their start-up stages, and named
``ov`` by `show`; the 224 study can propose OpenVINO points."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from tests.e2e_tests.conftest import json_of, run_cli

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'lepton-tune[openvino]')")

STUDY = """
name: ov
dataset: {kind: digits, image_size: 16, channels: 3, split_seed: 0}
train: {epochs: 1, batch_size: 64, seed: 0}
search_space:
  params:
    backbone: small_cnn
    precision: fp32
    runtime: {choices: [eager, openvino]}
    isolation: {choices: [process, thread]}
    shards: 2
    threads_per_shard: 1
    batch_size: 4
    max_wait_ms: 1.0
    pool_slots: 8
  constraints: ['isolation == "process" or runtime == "openvino"']
objectives: [accuracy, throughput, memory_mb]
sampler: {name: grid}
baseline: false
n_trials: 3
protocol: {warmup: 2, requests: 20, repeats: 1, concurrency: 4, probe_requests: 0, accuracy_samples: 200, noise_threshold: 4.0}
"""


@pytest.mark.slow
def test_openvino_points_are_searched_scored_and_labelled(tmp_path: Path) -> None:
    (tmp_path / "ov.yaml").write_text(STUDY)
    env = {"LEPTON_TUNE_CACHE": str(tmp_path / "cache")}
    summary = json_of(
        run_cli("search", "ov.yaml", "--run-dir", "runs", "--json", "--quiet", "--no-tracking", cwd=tmp_path, env=env)
    )
    assert summary["counts"]["complete"] == 3, summary
    study = optuna.load_study(study_name="ov", storage=f"sqlite:///{tmp_path / 'runs' / 'study.db'}")
    done = {
        (t.user_attrs["point"]["runtime"], t.user_attrs["point"]["isolation"]): t
        for t in study.trials
        if t.state == optuna.trial.TrialState.COMPLETE
    }
    assert set(done) == {("eager", "process"), ("openvino", "process"), ("openvino", "thread")}
    accuracy = {key: t.user_attrs["metrics"]["accuracy"] for key, t in done.items()}
    assert len(set(accuracy.values())) == 1, accuracy  # one trained model: same top-1 through eager and OpenVINO
    for key in [("openvino", "process"), ("openvino", "thread")]:
        record = done[key].user_attrs
        assert {"export", "convert", "start"} <= set(record["stage_seconds"]), (key, record["stage_seconds"])
        assert record["model"]["computed_precision"] == "f32 (INFERENCE_PRECISION_HINT=f32)"
    shown = run_cli("show", "--run-dir", "runs", cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "small_cnn fp32 ov/thread K2x1 b4" in shown.stdout or "small_cnn fp32 ov K2x1 b4" in shown.stdout, (
        shown.stdout
    )


def test_the_224_study_proposes_openvino_points_in_threads_and_processes() -> None:
    from lepton_tune.config import HostFacts, load_study
    from lepton_tune.tuning import suggest_point
    from lepton_tune.tuning._objective import host_feasibility

    space = load_study("studies/cpu-latency-224.yaml").search_space
    host = HostFacts(2, 8.0, 0)
    fixed = {
        "backbone": "resnet18",
        "shards": 2,
        "mode": "replica",
        "threads_per_shard": 1,
        "pin": True,
        "batch_size": 8,
        "max_wait_ms": 0.0,
        "share_weights": False,
        "runtime": "openvino",
    }
    for precision in ("fp32", "int8"):
        for isolation in ("process", "thread"):
            trial = optuna.trial.FixedTrial({**fixed, "precision": precision, "isolation": isolation})
            point, reason = suggest_point(trial, space, host)
            assert reason is None and (point["runtime"], point["isolation"]) == ("openvino", isolation)
            assert host_feasibility(point, host)[1] is None
