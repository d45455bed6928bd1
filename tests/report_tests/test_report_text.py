"""The report's first screen read as text: a plain summary and the recommended picks (issue 19)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from lepton_tune.report import build_report, write_report
from tests.front_tests._picks_study import picks_study

pytestmark = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


class _Text(HTMLParser):
    """The visible text before the first figure, one string per table row / paragraph."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self.skip = 0
        self.done = False

    def handle_starttag(self, tag: str, attrs: list) -> None:
        if tag in ("script", "style"):
            self.skip += 1
        if tag == "div" and ("class", "plotly-graph-div") in attrs:
            self.done = True
        if tag in ("tr", "p", "h1", "h2", "h3", "pre"):
            self.parts.append("\n")
        if tag in ("td", "th"):
            self.parts.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self.skip -= 1

    def handle_data(self, data: str) -> None:
        if not self.skip and not self.done:
            self.parts.append(data)


def first_screen(html_text: str) -> str:
    parser = _Text()
    parser.feed(html_text)
    text = re.sub(r"[ \t]+", " ", "".join(parser.parts))
    return "\n".join(line.strip(" |") for line in text.split("\n"))


def test_summary_says_what_was_searched_in_words(tmp_path: Path) -> None:
    text = first_screen(build_report(picks_study(tmp_path / "runs")).to_html())
    assert "Searched | backbone resnet18, small_cnn; prec bf16, fp32, int8; K 1, 2, 4; batch 1, 8, 32" in text
    assert "thr" not in text.split("Objectives")[0] and "train." not in text  # fixed fields are not listed
    assert (
        "Objectives | accuracy (%, higher is better); p95 latency (ms, lower is better); memory (MiB, lower is better)"
    ) in text
    assert "Budgets | accuracy at least 80.00%; p95 latency at most 50.00 ms" in text
    assert (
        "8 trials measured (1 baseline): 4 feasible, 2 infeasible, 1 failed, 1 noisy (host busy, never "
        "recommended); 1 confirmation re-measure"
    ) in text
    # hypervolume 1089 of the box (0.96-0.8) x (50-10 ms) x (530-250 MiB) = 1792
    assert "61% of the best seen. The share of the box" in text
    assert "{" not in text and "1089" not in text  # no raw JSON, no unrounded hypervolume


def test_picks_with_confirmed_numbers_and_export_commands(tmp_path: Path) -> None:
    text = first_screen(build_report(picks_study(tmp_path / "runs")).to_html())
    picks = text.split("recommended picks")[1].split("Pareto front")[0]
    knee, best = picks.split("Trial 6 · small_cnn int8 K2x1 b32")[1].split("Trial 1 · resnet18 bf16 K2x1 b8")
    assert "knee · lowest p95 latency · lowest memory" in knee
    assert "Not yet confirmed — export confirms it" in knee
    assert f"lepton-tune export --run-dir {tmp_path / 'runs'} --trial 6 --out bundle/" in knee
    assert "best accuracy" in best and "p95 latency 15.00 ms (search: 20.00)" in best
    assert "accuracy 97.00% (search: 96.00)" in best and "2.67x the in-process baseline's throughput" in best
    assert "Confirmed: re-measured in a fresh process as trial 8" in best
    assert "--trial 1 --out bundle/" in best
    assert "Trial 7" not in picks  # noisy: never a pick, even though it measured best on everything


def test_front_table_is_sorted_with_varying_parameters_and_units(tmp_path: Path) -> None:
    report = build_report(picks_study(tmp_path / "runs"))
    assert [r["trial"] for r in report.table] == [1, 0, 6]  # best accuracy first
    text = first_screen(report.to_html()).split("Pareto front")[1]
    lines = text.split("\n")
    header = next(line for line in lines if line.startswith("trial | point"))
    assert header.startswith(
        "trial | point | backbone | prec | K | batch | accuracy ↑ | p95 latency ↓ | memory ↓ | "
        "throughput | speedup | memory x | note"
    )
    rows = [line for line in lines if re.match(r"^\d+ \| ", line)]
    assert rows[0].startswith(
        "1 | resnet18 bf16 K2x1 b8 | resnet18 | bf16 | 2 | 8 | 96.00% | 20.00 ms | 400 MiB | "
        "50.0 img/s | - | - | recommended pick"
    )
    assert rows[1].startswith("0 | small_cnn fp32 K1x1 b1") and rows[1].endswith("baseline (in-process)")
    assert rows[2].startswith("6 | ") and rows[2].endswith("recommended pick") and len(rows) == 3


def test_noisy_points_are_marked_in_the_plots(tmp_path: Path) -> None:
    report = build_report(picks_study(tmp_path / "runs"))
    fig = report.figures[0][1]
    traces = {t.name: list(t.customdata) for t in fig.data}
    assert traces["noisy (host busy)"] == [7] and traces["confirmation re-measure"] == [8]
    assert 7 not in traces["Pareto front"] and 8 not in traces["Pareto front"]
    assert any(a.text == "pick (trial 6)" for a in fig.layout.annotations)
    assert any(a.text == "baseline (trial 0)" for a in fig.layout.annotations)
    hover = fig.data[list(traces).index("Pareto front")].text[0]
    assert hover.startswith("trial 0: small_cnn fp32 K1x1 b1 (in-process baseline)")


def test_a_failed_write_leaves_no_temporary_file(tmp_path: Path) -> None:
    study = picks_study(tmp_path / "runs")
    target = tmp_path / "out" / "report.html"
    target.mkdir(parents=True)  # a directory where the file should go: the rename fails
    with pytest.raises(OSError):
        write_report(study, target)
    assert sorted(p.name for p in target.parent.iterdir()) == ["report.html"]
