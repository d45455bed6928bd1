"""Parallel coordinates over every measured point: the parameters that vary, then the objectives."""

from __future__ import annotations

from typing import Any, NamedTuple

import plotly.graph_objects as go

from lepton_tune.front import TrialRecord, metric_title, param_name
from lepton_tune.report._pareto import ParetoInfo

__all__ = ["Dimension", "ParallelInfo", "parallel_info", "plot_parallel"]


class Dimension(NamedTuple):
    """One axis. ``ticktext`` is set for a categorical axis, whose ``values`` are then indices into it."""

    label: str
    values: list[float]
    ticktext: list[str] | None


class ParallelInfo(NamedTuple):
    """Axes in order (parameters, then objectives), the trials drawn, and their group per line:
    0 infeasible, 1 feasible, 2 on the Pareto front."""

    dimensions: list[Dimension]
    trial_numbers: list[int]
    groups: list[int]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def parallel_info(info: ParetoInfo, *, params: list[str] | None = None) -> ParallelInfo:
    """Axes for the ``point`` fields in ``params`` (default: all) that take more than one value among
    the plotted trials, labelled with their short names, then the objectives with their units.

    Example:
        >>> # [d.label for d in parallel_info(pareto_info(study)).dimensions]
        >>> # ['backbone', 'batch', 'accuracy (%, higher is better)', ...]
    """
    groups_of = {t.number: 0 for t in info.infeasible}
    groups_of.update({t.number: 1 for t in info.feasible})
    groups_of.update({t.number: 2 for t in info.front})
    trials = sorted([*info.infeasible, *info.feasible, *info.front], key=lambda t: t.number)
    points = [TrialRecord.of(t).point or t.params for t in trials]
    keys: list[str] = []
    for point in points:
        keys.extend(k for k in point if k not in keys and (params is None or k in params))
    dims: list[Dimension] = []
    for key in keys:
        column = [p.get(key) for p in points]
        if len({repr(v) for v in column}) < 2:
            continue
        if all(_is_number(v) for v in column):
            dims.append(Dimension(param_name(key), [float(v) for v in column if v is not None], None))
        else:
            labels = sorted({str(v) for v in column})
            dims.append(Dimension(param_name(key), [float(labels.index(str(v))) for v in column], labels))
    for j, (name, direction) in enumerate(zip(info.objectives, info.directions)):
        dims.append(Dimension(metric_title(name, direction), [info.values[t.number][j] for t in trials], None))
    return ParallelInfo(dims, [t.number for t in trials], [groups_of[t.number] for t in trials])


def plot_parallel(info: ParallelInfo) -> go.Figure:
    """One line per trial, red on the front, blue feasible, grey infeasible."""
    dims = []
    for d in info.dimensions:
        axis: dict[str, Any] = {"label": d.label, "values": d.values}
        if d.ticktext is not None:
            axis.update(tickvals=list(range(len(d.ticktext))), ticktext=d.ticktext)
        dims.append(axis)
    fig = go.Figure(
        go.Parcoords(
            dimensions=dims,
            line={
                "color": info.groups,
                "cmin": 0,
                "cmax": 2,
                "colorscale": [[0, "#bbbbbb"], [0.5, "#6baed6"], [1, "#d62728"]],
            },
        )
    )
    fig.update_layout(title="Parallel coordinates (red: Pareto front, blue: feasible, grey: infeasible)", height=500)
    return fig
