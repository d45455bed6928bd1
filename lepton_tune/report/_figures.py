"""Pareto projections, the 3-D view and the hypervolume curve, drawn from :class:`ParetoInfo`."""

from __future__ import annotations

import itertools
import json
from typing import Any

import plotly.graph_objects as go
from optuna.trial import FrozenTrial

from lepton_tune.report._pareto import ParetoInfo

__all__ = ["axis_title", "pareto_figures", "pareto_groups", "plot_hypervolume", "plot_pareto_2d", "plot_pareto_3d"]

#: (group name in the legend, marker) in drawing order; the baseline marker is drawn on top.
_STYLE: dict[str, dict[str, Any]] = {
    "infeasible": {"color": "#bbbbbb", "symbol": "x", "size": 7},
    "feasible": {"color": "#6baed6", "symbol": "circle", "size": 7},
    "Pareto front": {"color": "#d62728", "symbol": "circle", "size": 10, "line": {"color": "black", "width": 1}},
    "baseline": {"color": "rgba(0,0,0,0)", "symbol": "star", "size": 16, "line": {"color": "black", "width": 2}},
}


def axis_title(info: ParetoInfo, index: int) -> str:
    arrow = "higher is better" if info.directions[index] == "maximize" else "lower is better"
    return f"{info.objectives[index]} ({arrow})"


def pareto_groups(info: ParetoInfo) -> dict[str, list[FrozenTrial]]:
    """Trials per legend group: ``infeasible``, ``feasible`` (dominated), ``Pareto front``, ``baseline``.

    A baseline trial also appears in its own group (feasible, front or infeasible); the baseline
    group only adds a marker around it.
    """
    return {"infeasible": info.infeasible, "feasible": info.feasible, "Pareto front": info.front,
            "baseline": info.baseline}


def _hover(trial: FrozenTrial) -> str:
    point = trial.user_attrs.get("point") or trial.params
    reason = trial.user_attrs.get("reason") or ""
    text = f"trial {trial.number}<br>" + "<br>".join(f"{k}: {v}" for k, v in point.items())
    return text + (f"<br>reason: {reason}" if reason else "")


def plot_pareto_2d(info: ParetoInfo, x: int, y: int) -> go.Figure:
    """Objective ``x`` against objective ``y`` (indices into ``info.objectives``).

    Example:
        >>> # plot_pareto_2d(pareto_info(study), 0, 1).show()
    """
    fig = go.Figure()
    for name, trials in pareto_groups(info).items():
        fig.add_trace(go.Scatter(
            x=[info.values[t.number][x] for t in trials], y=[info.values[t.number][y] for t in trials],
            mode="markers", name=name, marker=_STYLE[name], text=[_hover(t) for t in trials],
            hovertemplate="%{text}<extra></extra>", customdata=[t.number for t in trials],
        ))
    fig.update_layout(title=f"{info.objectives[x]} vs {info.objectives[y]}",
                      xaxis_title=axis_title(info, x), yaxis_title=axis_title(info, y), height=450)
    return fig


def plot_pareto_3d(info: ParetoInfo, axes: tuple[int, int, int] = (0, 1, 2)) -> go.Figure:
    """A 3-D view of three objectives (the first three by default)."""
    fig = go.Figure()
    i, j, k = axes
    for name, trials in pareto_groups(info).items():
        style: dict[str, Any] = dict(_STYLE[name])
        style["size"] = max(3, int(style["size"]) // 2)
        if style["symbol"] == "star":  # not a 3-D symbol
            style["symbol"] = "diamond-open"
        fig.add_trace(go.Scatter3d(
            x=[info.values[t.number][i] for t in trials], y=[info.values[t.number][j] for t in trials],
            z=[info.values[t.number][k] for t in trials], mode="markers", name=name, marker=style,
            text=[_hover(t) for t in trials], hovertemplate="%{text}<extra></extra>",
            customdata=[t.number for t in trials],
        ))
    fig.update_layout(title="Objectives in 3-D", height=600, scene={
        "xaxis_title": info.objectives[i], "yaxis_title": info.objectives[j], "zaxis_title": info.objectives[k]})
    return fig


def pareto_figures(info: ParetoInfo) -> list[tuple[str, go.Figure]]:
    """One 2-D projection per objective pair, then a 3-D view when there are three or more objectives."""
    out = [(f"{info.objectives[a]} vs {info.objectives[b]}", plot_pareto_2d(info, a, b))
           for a, b in itertools.combinations(range(len(info.objectives)), 2)]
    if len(info.objectives) >= 3:
        out.append(("3-D view", plot_pareto_3d(info)))
    return out


def plot_hypervolume(info: ParetoInfo) -> go.Figure:
    """Hypervolume of the feasible front after each finished trial (final reference point)."""
    numbers = [n for n, _ in info.hypervolume_history]
    fig = go.Figure(go.Scatter(x=numbers, y=[hv for _, hv in info.hypervolume_history], mode="lines+markers",
                               name="hypervolume", line_shape="hv"))
    ref = json.dumps(dict(zip(info.objectives, [round(r, 6) for r in info.reference_point or []])))
    fig.update_layout(title=f"Hypervolume over trials (reference point {ref})", xaxis_title="trial",
                      yaxis_title="hypervolume", height=400)
    return fig
