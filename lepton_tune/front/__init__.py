"""The front, its hypervolume, the recommended picks and the short point form, shared by every package.

tuning, tracking, report, bundle and the CLI all import this package (never each other for these),
so that "on the front", "the knee" and "trial 5 small_cnn int8 K2x1 b16" mean the same everywhere.
It depends on optuna and numpy only.
"""

from __future__ import annotations

from lepton_tune.front._format import (
    METRIC_NAMES,
    METRIC_UNITS,
    PARAM_NAMES,
    budget_words,
    format_metric,
    format_ratio,
    format_value,
    metric_title,
    param_name,
    with_first,
)
from lepton_tune.front._front import (
    by_first_objective,
    eligible,
    feasible_front,
    hypervolume_share,
    ideal_point,
    is_feasible,
    objective_values,
    study_directions,
    study_hypervolume,
    study_objectives,
    study_reference,
)
from lepton_tune.front._hypervolume import REFERENCE_MARGIN, hypervolume, reference_point, to_loss
from lepton_tune.front._label import searched_params, short_label
from lepton_tune.front._picks import (
    MAX_PICKS,
    Pick,
    confirmation_for,
    export_command,
    knee_index,
    recommended_picks,
    study_location,
)
from lepton_tune.front._record import STATUSES, Status, TrialRecord

__all__ = [
    "MAX_PICKS",
    "METRIC_NAMES",
    "METRIC_UNITS",
    "PARAM_NAMES",
    "REFERENCE_MARGIN",
    "STATUSES",
    "Pick",
    "Status",
    "TrialRecord",
    "budget_words",
    "by_first_objective",
    "confirmation_for",
    "eligible",
    "export_command",
    "feasible_front",
    "format_metric",
    "format_ratio",
    "format_value",
    "hypervolume",
    "hypervolume_share",
    "ideal_point",
    "is_feasible",
    "knee_index",
    "metric_title",
    "objective_values",
    "param_name",
    "recommended_picks",
    "reference_point",
    "searched_params",
    "short_label",
    "study_directions",
    "study_hypervolume",
    "study_location",
    "study_objectives",
    "study_reference",
    "to_loss",
    "with_first",
]
