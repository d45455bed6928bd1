"""The bundle as an MLflow pyfunc model: input forms, and `mlflow models serve` over HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import re
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from lepton_tune.bundle._mlmodel import ENV_GUARD
from tests.bundle_tests._study import TinyStudy


def _test_images(n: int) -> np.ndarray:
    from lepton_tune.config import DatasetSpec
    from lepton_tune.data import load_dataset

    return np.ascontiguousarray(load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3)).test[0][:n].numpy())


def test_pyfunc_accepts_arrays_frames_and_dicts(study: TinyStudy) -> None:
    import pandas as pd

    from lepton_tune.bundle._pyfunc import _load_pyfunc

    x = _test_images(6)
    model = _load_pyfunc(str(study.bundle))
    try:
        want = model.predict(x)
        assert want.shape == (6, 10) and want.dtype == np.float32
        # batching may group the images differently: equal up to float rounding
        assert np.allclose(model.predict({"images": x}), want, atol=1e-4)
        assert np.allclose(model.predict(pd.DataFrame(x.reshape(6, -1))), want, atol=1e-4)
        assert np.allclose(model.predict(x[0]), want[:1], atol=1e-4)
    finally:
        model.close()
    assert model.engine.pids() == [os.getpid()]  # closed: no shard left


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@pytest.mark.slow
def test_mlflow_models_serve_answers_over_http(study: TinyStudy, tmp_path: Path) -> None:
    import lepton_tune

    port = _free_port()
    bin_dir = Path(sys.executable).parent
    env = {**study.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([str(bin_dir / "mlflow"), "models", "serve", "-m", str(study.bundle), "--env-manager", "local",
                             "--host", "127.0.0.1", "--port", str(port)], stdout=log, stderr=subprocess.STDOUT,
                            env=env, cwd=tmp_path, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while _get(f"http://127.0.0.1:{port}/ping") != 200:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping within 120 s"
            time.sleep(1)
        x = _test_images(8)
        body = json.dumps({"inputs": x.tolist()}).encode()
        req = urllib.request.Request(f"http://127.0.0.1:{port}/invocations", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=60) as resp:
            got = np.asarray(json.loads(resp.read())["predictions"], dtype=np.float32)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        log.close()
    with lepton_tune.load_bundle(study.bundle) as engine:
        want = engine.predict(x)
    assert got.shape == want.shape and (got.argmax(1) == want.argmax(1)).all() and np.allclose(got, want, atol=1e-4)


def test_requirements_name_only_public_packages_pinned_exactly(study: TinyStudy) -> None:
    """requirements.txt never names lepton-tune (the public index may serve someone else's package under it)."""
    lines = [line.strip() for line in (study.bundle / "requirements.txt").read_text().splitlines()]
    pins = [line for line in lines if line and not line.startswith("#")]
    assert pins and all(re.fullmatch(r"(torch|torchvision|mlflow)==[\w.]+", pin) for pin in pins), pins
    assert "--env-manager local" in (study.bundle / "requirements.txt").read_text()
    assert not any("lepton" in pin.lower() for pin in pins)
    conda = (study.bundle / "conda.yaml").read_text()
    assert "lepton" not in conda.replace("lepton-bundle", "").replace(ENV_GUARD, "")


def test_default_env_manager_reads_the_bundle_environment(study: TinyStudy) -> None:
    """MLflow's default (virtualenv) manager reads the model's environment without crashing (it raised
    KeyError 'conda' before conda.yaml was written); the guard comes before the public pins."""
    from mlflow.utils.virtualenv import _get_python_env

    env = _get_python_env(study.bundle)
    assert env.dependencies == [ENV_GUARD, "-r requirements.txt"]


@pytest.mark.slow
def test_default_env_manager_fails_fast_naming_env_manager_local(study: TinyStudy, tmp_path) -> None:
    """``mlflow models serve`` with MLflow's default env manager stops within seconds, before pip downloads
    anything, with a message naming ``--env-manager local`` (never installing torch or a 'lepton-tune')."""
    import shutil

    if shutil.which("pyenv") is None and shutil.which("uv") is None:
        pytest.skip("MLflow's virtualenv env manager needs pyenv or uv; neither is on this machine")
    bin_dir = Path(sys.executable).parent
    env = {**study.env, "MLFLOW_ENV_ROOT": str(tmp_path / "envs")}
    started = time.monotonic()
    proc = subprocess.run([str(bin_dir / "mlflow"), "models", "serve", "-m", str(study.bundle), "--host", "127.0.0.1",
                           "-p", "0"], capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "STOP--this-lepton-tune-bundle-is-served-with--env-manager-local" in output, output[-3000:]
    assert "Processing" not in output and "Collecting" not in output, output[-3000:]  # nothing was installed
    assert time.monotonic() - started < 120
