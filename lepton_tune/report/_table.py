"""The front as rows (data), then as an HTML table: sorted by the first objective, one column per
parameter that varied, numbers with their units, baselines and recommended picks marked."""

from __future__ import annotations

import html
from collections.abc import Mapping
from typing import Any

from lepton_tune.front import (
    METRIC_NAMES,
    Pick,
    TrialRecord,
    by_first_objective,
    format_metric,
    format_ratio,
    format_value,
    param_name,
    short_label,
)
from lepton_tune.report._pareto import ParetoInfo

__all__ = ["front_rows", "front_table_html"]

_EXTRA = ("throughput",)


def front_rows(
    info: ParetoInfo, *, params: list[str] | None = None, picks: list[Pick] | None = None
) -> list[dict[str, Any]]:
    """One dict per front trial, plus each baseline not on the front, best first on the first objective.

    Keys: ``trial``, ``baseline``, ``label`` (short point form), ``pick`` (its roles, or []), the
    objectives, the other metrics, ``params`` (short name -> value, for the fields in ``params``),
    then ``point`` (the whole point).

    Example:
        >>> # front_rows(pareto_info(study))[0]
        >>> # {'trial': 3, 'baseline': False, 'label': 'resnet18 bf16 K2x1 b8', 'accuracy': 0.97, ...}
    """
    roles = {p.trial.number: p.roles for p in picks or []}
    shown = {t.number for t in info.front}
    trials = list(info.front) + [
        t for t in info.baseline if t.number not in shown and t.number in info.values and t.state.name == "COMPLETE"
    ]
    trials = by_first_objective(trials, info.objectives, info.directions)
    rows = []
    for trial in trials:
        point = dict(TrialRecord.of(trial).point or trial.params)
        row: dict[str, Any] = {
            "trial": trial.number,
            "baseline": bool(TrialRecord.of(trial).baseline),
            "label": short_label(point),
            "pick": roles.get(trial.number, []),
        }
        if row["baseline"]:
            row["baseline_form"] = TrialRecord.of(trial).baseline_form
        row.update(zip(info.objectives, info.values[trial.number]))
        for key, value in (TrialRecord.of(trial).metrics or {}).items():
            row.setdefault(key, value)
        row["params"] = {param_name(k): point.get(k) for k in params or []}
        row["point"] = point
        rows.append(row)
    return rows


def _note(row: Mapping[str, Any]) -> str:
    notes = []
    if row.get("pick"):
        notes.append("recommended pick")
    if row.get("baseline"):
        form = row.get("baseline_form")
        notes.append(f"baseline (in-process{', ' + form if form else ''})")
    return "; ".join(notes)


def front_table_html(
    rows: list[dict[str, Any]], objectives: list[str] | None = None, directions: list[str] | None = None
) -> str:
    """An HTML ``<table>`` of ``rows`` (all text escaped); picks bold, baselines shaded."""
    if not rows:
        return "<p>No feasible trial yet: the front is empty.</p>"
    objectives = objectives or []
    directions = directions or [""] * len(objectives)
    params = list(rows[0].get("params") or {})
    metrics = objectives + [m for m in _EXTRA if m not in objectives]
    arrows = {"maximize": " \u2191", "minimize": " \u2193"}  # which way is better
    head = (
        ["trial", "point", *params]
        + [METRIC_NAMES.get(m, m) + arrows.get(d, "") for m, d in zip(metrics, directions + [""] * len(metrics))]
        + ["speedup", "memory x", "note"]
    )
    body = []
    for row in rows:
        cells = [str(row["trial"]), row.get("label", "")]
        cells += [format_value(row["params"].get(p)) for p in params]
        cells += [format_metric(m, row.get(m)) for m in metrics]
        cells += [format_ratio(row.get("speedup")), format_ratio(row.get("memory_ratio")), _note(row)]
        cls = " ".join(c for c, on in (("pick", bool(row.get("pick"))), ("baseline", row.get("baseline"))) if on)
        body.append(f'<tr class="{cls}">' + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    header = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    return (
        f'<div class="wide"><table class="front"><thead><tr>{header}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )
