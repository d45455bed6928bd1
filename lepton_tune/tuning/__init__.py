"""Optuna side: suggestions from the space, the staged objective, storages, samplers, the front."""

from __future__ import annotations

from lepton_tune.tuning._confirm import confirm_trial, confirmation_of, confirmed_here
from lepton_tune.tuning._lock import HostLock
from lepton_tune.tuning._objective import (
    Infeasible,
    Objective,
    TrialLimitError,
    budget_violations,
    evaluate_point,
)
from lepton_tune.tuning._samplers import make_sampler
from lepton_tune.tuning._search import SearchOptions, finished_count, open_study, run_search
from lepton_tune.tuning._selection import Requirement, Selection, parse_requirement, select_trial
from lepton_tune.tuning._storage import (
    StorageWarning,
    create_or_load_study,
    load_existing_study,
    make_storage,
    redact_url,
    resolve_storage_url,
)
from lepton_tune.tuning._suggest import suggest_point
from lepton_tune.tuning._summary import (
    baseline_metrics,
    baseline_ratios,
    baseline_trials,
    in_process_baseline,
    objectives_of,
    pareto_trials,
    point_json,
    study_counts,
    study_summary,
)

__all__ = [
    "HostLock",
    "Infeasible",
    "Objective",
    "Requirement",
    "SearchOptions",
    "Selection",
    "StorageWarning",
    "TrialLimitError",
    "baseline_metrics",
    "baseline_ratios",
    "baseline_trials",
    "budget_violations",
    "confirm_trial",
    "confirmation_of",
    "confirmed_here",
    "create_or_load_study",
    "evaluate_point",
    "finished_count",
    "in_process_baseline",
    "load_existing_study",
    "make_sampler",
    "make_storage",
    "objectives_of",
    "open_study",
    "pareto_trials",
    "parse_requirement",
    "point_json",
    "redact_url",
    "resolve_storage_url",
    "run_search",
    "select_trial",
    "study_counts",
    "study_summary",
    "suggest_point",
]
