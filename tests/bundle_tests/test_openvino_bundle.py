"""OpenVINO bundles carry the IR the trial served (xml + bin, checksummed) and reload in a fresh process
through load_bundle, the pyfunc and `mlflow models serve`, answering like the trial's own module."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'lepton-tune[openvino]')")

from lepton_tune.bundle import export_bundle, read_manifest
from lepton_tune.config import EngineConfig, load_study
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import BundleError
from tests.bundle_tests.test_runtimes import FRESH, SPEC, _study_with
from tests.bundle_tests.test_serve_http import free_port, ping

pytestmark = pytest.mark.filterwarnings("ignore:trial 0. the trained weights were not in the model cache:UserWarning")


def _export(tmp_path: Path, config: EngineConfig) -> tuple[Path, np.ndarray, np.ndarray]:
    """Export a one-trial study of ``config``; return the bundle, test images and the trial module's outputs."""
    from lepton_tune.bundle._runtimes import prepare_served
    from lepton_tune.models import ModelCache, train_model

    study, trial = _study_with(config)
    out = export_bundle(study, trial, tmp_path / "b")
    spec = load_study(SPEC)
    dataset = load_dataset(spec.dataset)
    served = prepare_served(
        train_model("small_cnn", spec.train, dataset, cache=ModelCache()), config, dataset, ModelCache()
    )
    manifest = read_manifest(out)
    assert served.artifact_hash == manifest["model"]["artifact_hash"]
    assert (out / "model.bin").read_bytes() == served.module.bin_bytes.numpy().tobytes()  # type: ignore[union-attr]
    x = np.ascontiguousarray(dataset.test[0][:16].numpy())
    with torch.inference_mode():
        want = served.module(torch.from_numpy(x)).numpy()
    return out, x, want


@pytest.mark.slow
@pytest.mark.parametrize(("precision", "isolation"), [("fp32", "process"), ("int8", "thread")])
def test_openvino_bundle_serves_its_ir_in_a_fresh_process(precision: str, isolation: str, tmp_path: Path) -> None:
    config = EngineConfig(runtime="openvino", precision=precision, isolation=isolation, shards=2)
    out, x, want = _export(tmp_path, config)
    manifest = read_manifest(out)
    assert manifest["model"]["loader"] == "openvino" and manifest["engine"]["runtime"] == "openvino"
    served = [(f["path"], f["role"]) for f in manifest["files"] if f["role"] not in ("card", "mlflow")]
    assert served == [("model.xml", "openvino"), ("model.bin", "openvino_weights")]
    assert not (out / "weights.pt").exists() and not (out / "model.onnx").exists()
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
        np.testing.assert_allclose(np.asarray(got[key]), want, atol=1e-4, err_msg=key)


@pytest.mark.slow
def test_openvino_bundle_answers_through_mlflow_models_serve(tmp_path: Path) -> None:
    out, x, want = _export(tmp_path, EngineConfig(runtime="openvino", precision="int8"))
    port, bin_dir = free_port(), Path(sys.executable).parent
    env = {
        **os.environ,
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            str(out),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=tmp_path,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while ping(f"http://127.0.0.1:{port}/ping") != 200:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping within 120 s"
            time.sleep(1)
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/invocations",
            data=json.dumps({"inputs": x.tolist(), "params": {"return_logits": True}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            got = np.asarray([row["logits"] for row in json.loads(resp.read())["predictions"]], dtype=np.float32)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    np.testing.assert_allclose(got, want, atol=1e-4)


def test_a_tampered_ir_or_a_missing_weights_entry_is_refused(tmp_path: Path) -> None:
    from lepton_tune.bundle._runtimes import load_served

    study, trial = _study_with(EngineConfig(runtime="openvino"))
    out = export_bundle(study, trial, tmp_path / "b")
    manifest = read_manifest(out)
    manifest["files"] = [f for f in manifest["files"] if f["role"] != "openvino_weights"]
    with pytest.raises(BundleError, match=r"model.loader 'openvino' needs a file with role 'openvino_weights'"):
        load_served(out, manifest)
    with (out / "model.bin").open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(BundleError, match=r"model\.bin: checksum mismatch"):
        read_manifest(out)
