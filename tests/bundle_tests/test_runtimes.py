"""Bundles per runtime: onnxruntime bundles carry the exact ONNX file the trial served (checksummed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest
import torch

from lepton_tune.bundle import export_bundle, read_manifest
from lepton_tune.config import EngineConfig, load_study
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import BundleError

pytestmark = pytest.mark.filterwarnings("ignore:trial 0. the trained weights were not in the model cache:UserWarning")

SPEC = {
    "name": "rt",
    "dataset": {"kind": "digits", "image_size": 16, "channels": 3},
    "train": {"epochs": 1},
    "search_space": {"params": {"shards": 1}},
    "objectives": ["accuracy"],
    "protocol": {"warmup": 2, "requests": 10, "repeats": 1, "concurrency": 1, "accuracy_samples": 50},
}

FRESH = r"""
import json, sys
import numpy as np, torch, mlflow.pyfunc
import lepton_tune
x = np.load(sys.argv[2])
with lepton_tune.load_bundle(sys.argv[1]) as engine:
    a = engine.predict(x)
    isolation = engine.config.isolation
b = mlflow.pyfunc.load_model(sys.argv[1]).predict(x, params={"return_logits": True})
print(json.dumps({"engine": a.tolist(), "pyfunc": np.stack(b["logits"]).tolist(), "isolation": isolation}))
"""


def _study_with(config: EngineConfig) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    """An in-memory study holding one measured trial of ``config`` (the metrics are made up)."""
    spec = load_study(SPEC)
    study = optuna.create_study(study_name="rt", directions=["maximize"])
    study.set_user_attr("spec", spec.model_dump(mode="json"))
    point = {
        "backbone": "small_cnn",
        **config.model_dump(mode="json"),
        **{f"train.{k}": v for k, v in spec.train.model_dump(mode="json").items()},
    }
    study.add_trial(
        optuna.trial.create_trial(
            values=[0.5],
            user_attrs={
                "point": point,
                "metrics": {"accuracy": 0.5, "latency_p95_ms": 1.0},
                "lepton_status": "ok",
                "protocol": spec.protocol.model_dump(mode="json"),
            },
        )
    )
    return study, study.trials[0]


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "isolation"), [("fp32", "process"), ("int8", "process"), ("fp32", "thread")])
def test_onnxruntime_bundle_serves_its_onnx_file_in_a_fresh_process(
    precision: str, isolation: str, tmp_path: Path
) -> None:
    pytest.importorskip("onnxruntime")
    from lepton_tune.bundle._runtimes import prepare_served
    from lepton_tune.models import ModelCache, train_model

    config = EngineConfig(runtime="onnxruntime", precision=precision, isolation=isolation)
    study, trial = _study_with(config)
    out = export_bundle(study, trial, tmp_path / "b")
    manifest = read_manifest(out)
    assert manifest["model"]["loader"] == "onnx" and manifest["engine"]["runtime"] == "onnxruntime"
    assert manifest["engine"]["isolation"] == isolation
    served = [(f["path"], f["role"]) for f in manifest["files"] if f["role"] not in ("card", "mlflow")]
    assert served == [("model.onnx", "onnx")]
    assert not (out / "weights.pt").exists()

    dataset = load_dataset(load_study(SPEC).dataset)
    trained = train_model("small_cnn", load_study(SPEC).train, dataset, cache=ModelCache())
    served = prepare_served(trained, config, dataset, ModelCache())
    assert served.artifact_hash == manifest["model"]["artifact_hash"]
    assert (out / "model.onnx").read_bytes() == served.module.to_bytes()  # type: ignore[operator]
    x = np.ascontiguousarray(dataset.test[0][:16].numpy())
    with torch.inference_mode():
        want = served.module(torch.from_numpy(x)).numpy()
    np.save(tmp_path / "x.npy", x)
    proc = subprocess.run(
        [sys.executable, "-c", FRESH, str(out), str(tmp_path / "x.npy")],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["isolation"] == isolation
    for key in ("engine", "pyfunc"):
        assert np.allclose(np.asarray(got[key]), want, atol=1e-4), key


def test_onnx_file_tampered_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("onnxruntime")
    monkeypatch.setenv("LEPTON_TUNE_CACHE", str(tmp_path / "empty-cache"))
    study, trial = _study_with(EngineConfig(runtime="onnxruntime"))
    with pytest.warns(UserWarning, match=r"trial 0: the trained weights were not in the model cache .* trained again"):
        out = export_bundle(study, trial, tmp_path / "b")
    with (out / "model.onnx").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.onnx: checksum mismatch"):
        read_manifest(out)


def test_unknown_trial_record_is_refused(tmp_path: Path) -> None:
    study, trial = _study_with(EngineConfig())
    study.set_user_attr("spec", None)
    with pytest.raises(BundleError, match=r"lacks the 'spec'/'point' attributes"):
        export_bundle(study, trial, tmp_path / "b")
