"""Assemble the report into one self-contained HTML file (plotly.js embedded once, opens offline).

The first screen answers "what should I deploy?": the plain summary, then the recommended picks
with their export commands; the front table and the figures follow.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from lepton_tune.report._figures import pareto_figures, plot_hypervolume
from lepton_tune.report._importance import importance_info, plot_importances
from lepton_tune.report._parallel import parallel_info, plot_parallel
from lepton_tune.report._pareto import ParetoInfo, pareto_info
from lepton_tune.report._sections import picks_html, summary_html
from lepton_tune.report._summary import SummaryInfo, summary_info
from lepton_tune.report._table import front_rows, front_table_html

__all__ = ["Report", "build_report", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 1.2em 2em; color: #222; max-width: 1500px; }
h1 { margin: 0 0 0.3em; font-size: 1.6em; } h2 { margin-top: 1.4em; border-bottom: 1px solid #ddd; }
table.front, table.summary { border-collapse: collapse; font-size: 0.9em; } table.front { font-size: 0.85em; }
table.front td, table.front th, table.summary td, table.summary th { border: 1px solid #ccc; padding: 3px 6px; }
.wide { overflow-x: auto; }
table.summary th { text-align: left; background: #f7f7f7; white-space: nowrap; vertical-align: top; }
table.front th { background: #f3f3f3; } table.front td { text-align: right; white-space: nowrap; }
table.front td:nth-child(2), table.front td:last-child { text-align: left; white-space: nowrap; }
tr.pick td { font-weight: 600; } tr.baseline td { background: #f4f4f4; font-style: italic; }
.note { color: #666; font-size: 0.92em; }
.picks { display: flex; flex-wrap: wrap; gap: 12px; margin-top: 0.5em; }
.pick { border: 2px solid #d62728; border-radius: 6px; padding: 6px 14px; flex: 1 1 380px; max-width: 560px; }
.pick h3 { margin: 0.3em 0; font-size: 1.1em; } .pick p { margin: 0.35em 0; }
.pick .roles { color: #d62728; font-weight: 600; } .pick pre { background: #f3f3f3; padding: 6px; white-space: pre-wrap; }
.ok { color: #2c7a2c; } .warn { color: #b35c00; }
"""


@dataclass(frozen=True)
class Report:
    """The report's content: the summary and picks, figures by section title, the front table.

    ``to_html()`` renders it; tests and users may read the pieces directly.
    """

    title: str
    info: ParetoInfo
    summary: SummaryInfo
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)

    def to_html(self) -> str:
        """The whole document; plotly.js is inlined once in ``<head>``, each figure is a ``<div>``."""
        parts = [
            f"<h1>{html.escape(self.title)}</h1>",
            summary_html(self.summary),
            "<h2>What to deploy: recommended picks</h2>",
            picks_html(self.summary, self.info.objectives, self.info.directions),
            "<h2>Pareto front</h2>",
            '<p class="note">Feasible points no other point beats on every objective, best first on '
            f"{html.escape(self.info.objectives[0] if self.info.objectives else 'trial')}, "
            "with each in-process baseline; numbers are the search's own measurements. <i>speedup</i> and "
            "<i>memory x</i>: throughput and memory against the in-process baseline of the same backbone.</p>",
            front_table_html(self.table, self.info.objectives, self.info.directions),
        ]
        for title, fig in self.figures:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True}))
        return (
            '<!DOCTYPE html>\n<html><head><meta charset="utf-8">'
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>"
            f'<script type="text/javascript">{get_plotlyjs()}</script></head>\n<body>\n'
            + "\n".join(parts)
            + "\n</body></html>\n"
        )


def build_report(study: optuna.Study, *, location: str | None = None) -> Report:
    """Read ``study`` and build the summary, the picks, the front table and every figure.

    ``location`` is how the export commands name the study (``--run-dir runs``); by default it is
    worked out from the study's storage.

    Example:
        >>> # report = build_report(optuna.load_study(study_name="s", storage="sqlite:///lepton-runs/study.db"))
        >>> # [p.trial.number for p in report.summary.picks], [title for title, _ in report.figures]
    """
    info = pareto_info(study)
    summary = summary_info(study, info, location=location)
    from lepton_tune.front import PARAM_NAMES

    short_to_key = {v: k for k, v in PARAM_NAMES.items()}
    varying = [short_to_key.get(name, name) for name in summary.searched]
    picks = [p.trial.number for p in summary.picks]
    figures = list(pareto_figures(info, picks=picks))
    figures.append(("Front quality over trials", plot_hypervolume(info)))
    figures.append(("Parameter importance", plot_importances(importance_info(study, params=varying))))
    parallel = parallel_info(info, params=varying)
    if parallel.trial_numbers:
        figures.append(("Parallel coordinates", plot_parallel(parallel)))
    table = front_rows(info, params=varying, picks=summary.picks)
    return Report(f"lepton-tune report: {info.study_name}", info, summary, figures, table)


def write_report(study: optuna.Study, path: str | os.PathLike[str], *, location: str | None = None) -> Path:
    """Write the report of ``study`` to ``path`` (one self-contained HTML file) and return the path.

    The file is written next to its final name and renamed into place, so a reader never sees half;
    if anything fails the temporary file is removed and the error raised.

    Example:
        >>> # write_report(study, "lepton-runs/report-quickstart.html")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(study, location=location).to_html()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path
