"""`lepton-tune report` on real SQLite studies."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tune.cli import main
from tests.report_tests._studies import ROWS, make_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


def test_default_run_dir_and_only_study(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    make_study(tmp_path / "lepton-runs", rows=ROWS[:3])
    monkeypatch.chdir(tmp_path)
    assert main(["report"]) == 0
    path = Path(capfd.readouterr().out.strip())
    assert path == Path("lepton-runs/report-demo.html") and (tmp_path / path).stat().st_size > 1_000_000


def test_storage_study_name_and_output(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    make_study(tmp_path, name="one", rows=ROWS[:2])
    make_study(tmp_path, name="two", rows=ROWS)
    out = tmp_path / "sub" / "r.html"
    assert (
        main(["report", "--storage", f"sqlite:///{tmp_path / 'study.db'}", "--study-name", "two", "-o", str(out)]) == 0
    )
    text = out.read_text()
    assert "lepton-tune report: two" in text and capfd.readouterr().out.strip() == str(out)


def test_several_studies_need_a_name(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    make_study(tmp_path, name="one", rows=[])
    make_study(tmp_path, name="two", rows=[])
    assert main(["report", "--run-dir", str(tmp_path)]) == 1
    assert "holds 2 studies (one, two); pass --study-name" in capfd.readouterr().err


def test_missing_study_database(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["report", "--run-dir", str(tmp_path / "nothing")]) == 1
    assert "no study database at" in capfd.readouterr().err


def test_unknown_study_name(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    make_study(tmp_path, name="one", rows=[])
    assert main(["report", "--run-dir", str(tmp_path), "--study-name", "nope"]) == 1
    assert "study 'nope' not found" in capfd.readouterr().err
