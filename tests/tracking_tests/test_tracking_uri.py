"""Every command picks the MLflow store by one rule: flag, MLFLOW_TRACKING_URI, the study's, the run dir's."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tune.tracking import default_tracking_uri, resolve_tracking_uri, study_tracking_uri


def test_resolution_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    study = "sqlite:////tmp/study-said.db"
    assert resolve_tracking_uri(None, tmp_path) == default_tracking_uri(tmp_path)
    assert resolve_tracking_uri(None, tmp_path, study) == study
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert resolve_tracking_uri(None, tmp_path, study) == "http://127.0.0.1:5999"
    assert resolve_tracking_uri("sqlite:////tmp/flag.db", tmp_path, study) == "sqlite:////tmp/flag.db"


def test_the_study_records_its_tracking_uri() -> None:
    assert study_tracking_uri({"spec": {"tracking": {"uri": "http://127.0.0.1:5000", "enabled": True}}}) == (
        "http://127.0.0.1:5000"
    )
    assert study_tracking_uri({"spec": {"tracking": {"uri": None}}}) is None
    assert study_tracking_uri({}) is None
