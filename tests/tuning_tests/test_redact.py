"""Secrets never leave the process: every URL/password form is redacted, and the study's stored spec
holds no password (credentials come from the URL or the environment at run time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import optuna
import pytest

from lepton_tune._redact import redact_data, redact_url
from lepton_tune.config import load_study
from lepton_tune.tuning import SearchOptions, open_study

SECRET = "s3cr@t:pw/x"


@pytest.mark.parametrize(
    "text",
    [
        f"postgresql+psycopg2://bob:{SECRET}@db.internal:5432/optuna",
        "postgresql://db.internal/optuna?user=bob&password=s3cret&sslmode=require",
        "postgresql://db.internal/optuna?sslpassword=s3cret",
        "host=db.internal user=bob password=s3cret dbname=optuna",
        "host=db user=bob password='s3cret with spaces' dbname=optuna",
        'host=db password="s3cret@db" dbname=optuna',
        "cannot connect to 'mysql://root:s3cret@localhost/x': refused",
        "PASSWORD = s3cret",
    ],
)
def test_every_password_form_is_redacted(text: str) -> None:
    out = redact_url(text)
    assert "s3cr" not in out and "***" in out, out
    assert "db" in out or "localhost" in out or "PASSWORD" in out  # the rest of the text stays readable


def test_nested_data_is_redacted() -> None:
    data = {"storage": {"url": f"postgresql://bob:{SECRET}@h/db"}, "list": ["password=s3cret", 3]}
    assert "s3cr" not in json.dumps(redact_data(data))


def test_study_stores_its_spec_without_secrets(tmp_path: Path) -> None:
    (tmp_path / "study.yaml").write_text(
        "name: secret-study\n"
        "search_space: {params: {backbone: small_cnn}}\n"
        f"storage: {{url: 'postgresql://bob:{SECRET}@db.internal:5432/optuna?password=s3cret'}}\n"
        "tracking: {enabled: false, uri: 'host=db user=bob password=s3cret dbname=mlflow'}\n"
    )
    spec = load_study(tmp_path / "study.yaml")
    url = f"sqlite:///{tmp_path / 'study.db'}"  # --storage overrides the file's (unreachable) server
    open_study(spec, SearchOptions(run_dir=tmp_path, storage=url))
    stored = optuna.load_study(study_name="secret-study", storage=url).user_attrs
    assert "s3cr" not in json.dumps(stored)
    assert stored["spec"]["storage"]["url"].startswith("postgresql://bob:***@db.internal")
    assert b"s3cr" not in (tmp_path / "study.db").read_bytes()


def test_every_command_turns_mlflow_telemetry_off(tmp_path: Path) -> None:
    code = (
        "import os, sys; from lepton_tune.cli import main; main(['cache', '--cache-dir', sys.argv[1], 'ls', "
        "'--json']); from mlflow.telemetry.utils import is_telemetry_disabled; "
        "print(os.environ.get('MLFLOW_DISABLE_TELEMETRY'), is_telemetry_disabled())"
    )
    env = {k: v for k, v in os.environ.items() if k not in ("MLFLOW_DISABLE_TELEMETRY", "DO_NOT_TRACK")}
    proc = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "c")],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "true True"
