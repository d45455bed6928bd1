"""The bundle's MLflow environment files (input forms: test_pyfunc_inputs.py; HTTP: test_serve_http.py)."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path

import pytest

from lepton_tune.bundle._mlmodel import ENV_GUARD
from tests.bundle_tests._study import TinyStudy


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
    proc = subprocess.run(
        [str(bin_dir / "mlflow"), "models", "serve", "-m", str(study.bundle), "--host", "127.0.0.1", "-p", "0"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        cwd=tmp_path,
        check=False,
    )
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0, output[-3000:]
    assert "STOP--this-lepton-tune-bundle-is-served-with--env-manager-local" in output, output[-3000:]
    assert "Processing" not in output and "Collecting" not in output, output[-3000:]  # nothing was installed
    assert time.monotonic() - started < 120
