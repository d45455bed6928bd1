"""The front as rows: trial, objective values, the other measured metrics, and the point."""

from __future__ import annotations

import html
from typing import Any

from lepton_tune.report._pareto import ParetoInfo

__all__ = ["front_rows", "front_table_html"]


def front_rows(info: ParetoInfo) -> list[dict[str, Any]]:
    """One dict per front trial, ordered by the first objective (best first).

    Keys: ``trial``, ``baseline``, the objectives, then the other metrics, then ``point`` (a dict).

    Example:
        >>> # front_rows(pareto_info(study))[0]
        >>> # {'trial': 3, 'baseline': False, 'accuracy': 0.97, ..., 'point': {'backbone': ...}}
    """
    rows = []
    for trial in info.front:
        row: dict[str, Any] = {"trial": trial.number, "baseline": bool(trial.user_attrs.get("baseline"))}
        row.update(zip(info.objectives, info.values[trial.number]))
        for key, value in (trial.user_attrs.get("metrics") or {}).items():
            row.setdefault(key, value)
        row["point"] = dict(trial.user_attrs.get("point") or trial.params)
        rows.append(row)
    reverse = bool(info.directions) and info.directions[0] == "maximize"
    return sorted(rows, key=lambda r: r[info.objectives[0]] if info.objectives else r["trial"], reverse=reverse)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, dict):
        return ", ".join(f"{k}={v}" for k, v in value.items())
    return str(value)


def front_table_html(rows: list[dict[str, Any]]) -> str:
    """An HTML ``<table>`` of ``rows`` (all text escaped)."""
    if not rows:
        return "<p>No feasible trial yet: the front is empty.</p>"
    columns: list[str] = []
    for row in rows:
        columns.extend(k for k in row if k not in columns)
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(_cell(row.get(c, '')))}</td>" for c in columns) + "</tr>" for row in rows
    )
    return f'<table class="front"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
