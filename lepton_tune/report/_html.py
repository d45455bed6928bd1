"""Assemble the figures into one self-contained HTML file (plotly.js embedded once, opens offline)."""

from __future__ import annotations

import html
import json
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
from lepton_tune.report._table import front_rows, front_table_html

__all__ = ["Report", "build_report", "write_report"]

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { margin-bottom: 0.2em; } h2 { margin-top: 1.6em; border-bottom: 1px solid #ddd; }
table.front, table.summary { border-collapse: collapse; font-size: 0.9em; }
table.front td, table.front th, table.summary td, table.summary th { border: 1px solid #ccc; padding: 3px 8px; }
table.front th { background: #f3f3f3; } .note { color: #666; }
"""


@dataclass(frozen=True)
class Report:
    """The report's content: a summary, figures by section title, the front table.

    ``to_html()`` renders it; tests and users may read the pieces directly.
    """

    title: str
    info: ParetoInfo
    summary: dict[str, Any]
    figures: list[tuple[str, go.Figure]] = field(default_factory=list)
    table: list[dict[str, Any]] = field(default_factory=list)

    def to_html(self) -> str:
        """The whole document; plotly.js is inlined once in ``<head>``, each figure is a ``<div>``."""
        parts = [f"<h1>{html.escape(self.title)}</h1>", _summary_html(self.summary),
                 "<h2>Pareto front</h2>", front_table_html(self.table)]
        for title, fig in self.figures:
            parts.append(f"<h2>{html.escape(title)}</h2>")
            parts.append(fig.to_html(full_html=False, include_plotlyjs=False, config={"responsive": True}))
        return (
            "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(self.title)}</title><style>{_CSS}</style>"
            f"<script type=\"text/javascript\">{get_plotlyjs()}</script></head>\n<body>\n"
            + "\n".join(parts) + "\n</body></html>\n"
        )


def _summary_html(summary: dict[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{html.escape(k)}</th><td>{html.escape(v if isinstance(v, str) else json.dumps(v))}</td></tr>"
        for k, v in summary.items()
    )
    return f'<table class="summary">{rows}</table>'


def build_report(study: optuna.Study) -> Report:
    """Read ``study`` and build every figure of the report.

    Example:
        >>> # report = build_report(optuna.load_study(study_name="s", storage="sqlite:///lepton-runs/study.db"))
        >>> # [title for title, _ in report.figures]
    """
    info = pareto_info(study)
    summary: dict[str, Any] = {
        "study": info.study_name,
        "objectives": ", ".join(f"{o} ({d})" for o, d in zip(info.objectives, info.directions)),
        "budgets": study.user_attrs.get("budgets") or {},
        "trials": info.counts,
        "hypervolume": info.hypervolume,
        "reference point": dict(zip(info.objectives, info.reference_point or [])),
    }
    if study.user_attrs.get("host_id"):
        summary["host"] = study.user_attrs["host_id"]
    figures = list(pareto_figures(info))
    figures.append(("Hypervolume over trials", plot_hypervolume(info)))
    figures.append(("Parameter importance", plot_importances(importance_info(study))))
    parallel = parallel_info(info)
    if parallel.trial_numbers:
        figures.append(("Parallel coordinates", plot_parallel(parallel)))
    return Report(f"lepton-tune report: {info.study_name}", info, summary, figures, front_rows(info))


def write_report(study: optuna.Study, path: str | os.PathLike[str]) -> Path:
    """Write the report of ``study`` to ``path`` (one self-contained HTML file) and return the path.

    The file is written next to its final name and renamed into place, so a reader never sees half.

    Example:
        >>> # write_report(study, "lepton-runs/report-quickstart.html")
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = build_report(study).to_html()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path
