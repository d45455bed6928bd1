"""The report and ``show`` of a real tiny study: summary, confirmed picks, export commands (issue 19)."""

from __future__ import annotations

import re

import pytest

from tests.report_tests.test_report_text import first_screen

from .conftest import TINY_STUDY, json_of, run_cli

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def picked_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The tiny study without a baseline: at 16x16 the in-process call alone can be the whole front
    (no pick then: see the test below), so the picks are tested on the searched layouts only."""
    root = tmp_path_factory.mktemp("picked")
    (root / "tiny.yaml").write_text(TINY_STUDY + "baseline: false\n")
    proc = run_cli(
        "search",
        "tiny.yaml",
        "--run-dir",
        "runs",
        "--json",
        "--quiet",
        cwd=root,
        env={"LEPTON_TUNE_CACHE": str(root / "cache")},
    )
    return {"root": root, "proc": proc, "summary": json_of(proc)}


def test_a_front_of_only_the_baseline_says_to_serve_the_model_as_it_is(tiny_run: dict) -> None:
    shown = run_cli("show", "--run-dir", "runs", cwd=tiny_run["root"])
    assert shown.returncode == 0, shown.stderr[-3000:]
    front = tiny_run["summary"]["pareto"]
    baseline = tiny_run["summary"]["baseline"][0]["trial"]
    if [p["trial"] for p in front] == [baseline]:
        assert f"No searched layout beats your in-process call (baseline trial {baseline})" in shown.stdout
    else:
        assert "pick: knee" in shown.stdout


def test_report_of_a_real_study_says_what_to_deploy(picked_run: dict) -> None:
    tiny_run = picked_run
    text = first_screen((tiny_run["root"] / "runs" / "report-tiny.html").read_text())
    assert "Searched | prec fp32, bf16; K 1-2; batch 1, 4" in text  # backbone and thr were fixed
    assert "Budgets | accuracy at least 20.00%" in text
    assert re.search(
        r"\d+ trials measured(?: \(\d+ baselines?\))?: \d+ feasible, \d+ infeasible, 0 failed, \d+ noisy", text
    )
    assert re.search(r"\d+% of the best seen\. The share of the box", text), text
    picks = re.findall(r"Trial (\d+) · small_cnn (?:fp32|bf16) K\dx1 b\d", text)
    assert 1 <= len(picks) <= 3 and "knee" in text
    for number in picks:  # search confirmed every pick in a fresh process; each has its export command
        assert f"lepton-tune export --run-dir runs --trial {number} --out bundle/" in text
    assert text.count("Confirmed: re-measured in a fresh process as trial") == len(picks), text
    assert "Not yet confirmed" not in text


def test_show_marks_the_picks_in_the_short_form(picked_run: dict) -> None:
    tiny_run = picked_run
    shown = run_cli("show", "--run-dir", "runs", cwd=tiny_run["root"])
    assert shown.returncode == 0, shown.stderr[-3000:]
    assert "pick: knee" in shown.stdout and "Recommended picks" in shown.stdout
    assert re.search(r"trial \d+  small_cnn \w+ K\dx1 b\d  \(knee", shown.stdout)
    assert "confirmed in a fresh process (trial" in shown.stdout
    assert "lepton-tune export --run-dir runs --trial" in shown.stdout
