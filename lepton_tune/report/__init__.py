"""Plotly figures from study data, and one self-contained HTML report (plotly.js embedded once)."""

from __future__ import annotations

from lepton_tune.front import hypervolume, reference_point
from lepton_tune.report._figures import (
    pareto_figures,
    pareto_groups,
    plot_hypervolume,
    plot_pareto_2d,
    plot_pareto_3d,
)
from lepton_tune.report._html import Report, build_report, write_report
from lepton_tune.report._importance import ImportanceInfo, importance_info, plot_importances
from lepton_tune.report._parallel import ParallelInfo, parallel_info, plot_parallel
from lepton_tune.report._pareto import (
    ParetoInfo,
    feasible_front,
    is_feasible,
    objective_values,
    pareto_info,
    study_hypervolume,
)
from lepton_tune.report._table import front_rows, front_table_html

__all__ = [
    "ImportanceInfo",
    "ParallelInfo",
    "ParetoInfo",
    "Report",
    "build_report",
    "feasible_front",
    "front_rows",
    "front_table_html",
    "hypervolume",
    "importance_info",
    "is_feasible",
    "objective_values",
    "parallel_info",
    "pareto_figures",
    "pareto_groups",
    "pareto_info",
    "plot_hypervolume",
    "plot_importances",
    "plot_parallel",
    "plot_pareto_2d",
    "plot_pareto_3d",
    "reference_point",
    "study_hypervolume",
    "write_report",
]
