"""Pareto projections, the 3-D view and the hypervolume curve, drawn from :class:`ParetoInfo`.

Axes carry units, a metric spanning more than a decade is drawn on a log axis, the baseline and
the recommended picks are annotated, and the hover text names a point in its short form.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from lepton_tune.front import METRIC_NAMES, TrialRecord, format_metric, metric_title, short_label
from lepton_tune.report._pareto import ParetoInfo

__all__ = [
    "axis_title",
    "log_axis",
    "pareto_figures",
    "pareto_groups",
    "plot_hypervolume",
    "plot_pareto_2d",
    "plot_pareto_3d",
]

#: (group name in the legend, marker) in drawing order; the baseline marker is drawn on top.
_STYLE: dict[str, dict[str, Any]] = {
    "infeasible": {"color": "#bbbbbb", "symbol": "x", "size": 7},
    "noisy (host busy)": {
        "color": "#ff9896",
        "symbol": "x-thin-open",
        "size": 9,
        "line": {"color": "#d62728", "width": 1},
    },
    "feasible": {"color": "#6baed6", "symbol": "circle", "size": 7},
    "confirmation re-measure": {"color": "#2ca02c", "symbol": "diamond-open", "size": 10},
    "Pareto front": {"color": "#d62728", "symbol": "circle", "size": 10, "line": {"color": "black", "width": 1}},
    "baseline": {"color": "rgba(0,0,0,0)", "symbol": "star", "size": 16, "line": {"color": "black", "width": 2}},
}


def axis_title(info: ParetoInfo, index: int) -> str:
    """``p95 latency (ms, lower is better)``."""
    return metric_title(info.objectives[index], info.directions[index])


def log_axis(values: Sequence[float]) -> bool:
    """True when the positive ``values`` span more than a decade (max > 10 x min)."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and bool(positive) and max(positive) > 10 * min(positive)


def pareto_groups(info: ParetoInfo) -> dict[str, list[FrozenTrial]]:
    """Trials per legend group: ``infeasible``, ``feasible`` (dominated), ``Pareto front``, ``baseline``,
    plus ``noisy (host busy)`` and ``confirmation re-measure`` when the study has any.

    A baseline trial also appears in its own group (feasible, front or infeasible); the baseline
    group only adds a marker around it.
    """
    groups = {
        "infeasible": info.infeasible,
        "noisy (host busy)": info.noisy,
        "feasible": info.feasible,
        "confirmation re-measure": info.confirmations,
        "Pareto front": info.front,
        "baseline": info.baseline,
    }
    return {k: list(v) for k, v in groups.items() if v or k in ("infeasible", "feasible", "Pareto front", "baseline")}


def _hover(trial: FrozenTrial, info: ParetoInfo) -> str:
    point = TrialRecord.of(trial).point or trial.params
    attrs = trial.user_attrs
    head = f"trial {trial.number}: {short_label(point)}" if point else f"trial {trial.number}"
    if attrs.get("baseline"):
        head += " (in-process baseline)"
    if attrs.get("confirms") is not None:
        head += f" (confirms trial {attrs['confirms']})"
    metrics = attrs.get("metrics") or {}
    lines = [head] + [
        f"{name}: {format_metric(name, value)}"
        for name, value in zip(info.objectives, info.values.get(trial.number, []))
    ]
    if metrics.get("speedup") is not None:
        lines.append(f"speedup {metrics['speedup']:.2f}x, memory {metrics.get('memory_ratio', float('nan')):.2f}x")
    reason = attrs.get("reason") or ""
    return "<br>".join(lines) + (f"<br>{reason}" if reason else "")


def _scale(info: ParetoInfo, index: int) -> dict[str, Any]:
    values = [v[index] for v in info.values.values()]
    axis: dict[str, Any] = {"title": axis_title(info, index)}
    if info.objectives[index] == "accuracy":
        axis["tickformat"] = ".1%"
    elif log_axis(values):
        axis["type"] = "log"
    return axis


def _annotations(
    info: ParetoInfo, x: int, y: int, picks: Sequence[int], log: tuple[bool, bool]
) -> list[dict[str, Any]]:
    import math

    def at(value: float, is_log: bool) -> float:
        return math.log10(value) if is_log else value

    notes = []
    labelled = [(t.number, "baseline") for t in info.baseline] + [(n, "pick") for n in picks]
    for number, word in labelled:
        if number not in info.values:
            continue
        values = info.values[number]
        notes.append(
            {
                "x": at(values[x], log[0]),
                "y": at(values[y], log[1]),
                "text": f"{word} (trial {number})",
                "showarrow": True,
                "arrowhead": 2,
                "ax": 30,
                "ay": -30 if word == "pick" else 30,
                "font": {"size": 11},
            }
        )
    return notes


def plot_pareto_2d(info: ParetoInfo, x: int, y: int, *, picks: Sequence[int] = ()) -> go.Figure:
    """Objective ``x`` against objective ``y`` (indices into ``info.objectives``).

    Example:
        >>> # plot_pareto_2d(pareto_info(study), 0, 1).show()
    """
    fig = go.Figure()
    for name, trials in pareto_groups(info).items():
        fig.add_trace(
            go.Scatter(
                x=[info.values[t.number][x] for t in trials],
                y=[info.values[t.number][y] for t in trials],
                mode="markers",
                name=name,
                marker=_STYLE[name],
                text=[_hover(t, info) for t in trials],
                hovertemplate="%{text}<extra></extra>",
                customdata=[t.number for t in trials],
            )
        )
    xaxis, yaxis = _scale(info, x), _scale(info, y)
    log = (xaxis.get("type") == "log", yaxis.get("type") == "log")
    fig.update_layout(
        title=f"{metric_title(info.objectives[x])} vs {metric_title(info.objectives[y])}",
        xaxis=xaxis,
        yaxis=yaxis,
        height=450,
        annotations=_annotations(info, x, y, picks, log),
    )
    return fig


def plot_pareto_3d(info: ParetoInfo, axes: tuple[int, int, int] = (0, 1, 2)) -> go.Figure:
    """A 3-D view of three objectives (the first three by default)."""
    fig = go.Figure()
    i, j, k = axes
    for name, trials in pareto_groups(info).items():
        style: dict[str, Any] = dict(_STYLE[name])
        style["size"] = max(3, int(style["size"]) // 2)
        if style["symbol"] in ("star", "x-thin-open", "diamond-open"):  # not 3-D symbols
            style["symbol"] = "diamond-open"
        fig.add_trace(
            go.Scatter3d(
                x=[info.values[t.number][i] for t in trials],
                y=[info.values[t.number][j] for t in trials],
                z=[info.values[t.number][k] for t in trials],
                mode="markers",
                name=name,
                marker=style,
                text=[_hover(t, info) for t in trials],
                hovertemplate="%{text}<extra></extra>",
                customdata=[t.number for t in trials],
            )
        )
    scene = {f"{a}axis": _scale(info, n) for a, n in zip("xyz", axes)}
    fig.update_layout(title="Objectives in 3-D", height=600, scene=scene)
    return fig


def pareto_figures(info: ParetoInfo, *, picks: Sequence[int] = ()) -> list[tuple[str, go.Figure]]:
    """One 2-D projection per objective pair, then a 3-D view when there are three or more objectives."""
    names = [METRIC_NAMES.get(o, o) for o in info.objectives]
    out = [
        (f"{names[a]} vs {names[b]}", plot_pareto_2d(info, a, b, picks=picks))
        for a, b in itertools.combinations(range(len(info.objectives)), 2)
    ]
    if len(info.objectives) >= 3:
        out.append(("3-D view", plot_pareto_3d(info)))
    return out


def plot_hypervolume(info: ParetoInfo) -> go.Figure:
    """The front's hypervolume after each finished trial, as a share of the final best-seen box."""
    numbers = [n for n, _ in info.hypervolume_history]
    share = info.hypervolume_share
    scale = (share / info.hypervolume) if share is not None and info.hypervolume > 0 else None
    ys = (
        [hv * scale for _, hv in info.hypervolume_history]
        if scale is not None
        else [hv for _, hv in info.hypervolume_history]
    )
    fig = go.Figure(go.Scatter(x=numbers, y=ys, mode="lines+markers", name="hypervolume", line_shape="hv"))
    ref = ", ".join(
        f"{name} {format_metric(name, value)}" for name, value in zip(info.objectives, info.reference_point or [])
    )
    yaxis: dict[str, Any] = {
        "title": "hypervolume, share of the best-seen box",
        "tickformat": ".0%",
        "range": [0, 1.05],
    }
    fig.update_layout(
        title=f"Front quality over trials (reference point: {ref or 'none yet'})",
        xaxis_title="trial",
        yaxis=yaxis if scale is not None else {"title": "hypervolume"},
        height=400,
    )
    return fig
