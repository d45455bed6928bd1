"""The public Python API behind ``lepton_tune.search``, ``load_study``, ``verify`` and ``LeptonModel``.

The CLI is a thin layer over these functions: ``lepton-tune search`` is :func:`search` plus flag
parsing and printing. Users import them from the top-level ``lepton_tune`` package.
"""

from __future__ import annotations

from lepton_tune._api._display import baseline_on_front, front_table, next_steps, pick_lines
from lepton_tune._api._export import ExportResult, check_export_options, export_point
from lepton_tune._api._load import load_study
from lepton_tune._api._model import LeptonModel
from lepton_tune._api._progress import ProgressCallback, trial_line
from lepton_tune._api._result import Point, SearchResult
from lepton_tune._api._search import (
    DEFAULT_RUN_DIR,
    DEFAULT_STUDY,
    confirm_picks,
    location_options,
    search,
    write_study_report,
)
from lepton_tune._api._verify import EXIT_BUSY, EXIT_DRIFTED, VerifyResult, host_differences, verify

__all__ = [
    "DEFAULT_RUN_DIR",
    "DEFAULT_STUDY",
    "EXIT_BUSY",
    "EXIT_DRIFTED",
    "ExportResult",
    "LeptonModel",
    "Point",
    "ProgressCallback",
    "SearchResult",
    "VerifyResult",
    "baseline_on_front",
    "check_export_options",
    "confirm_picks",
    "export_point",
    "front_table",
    "host_differences",
    "load_study",
    "location_options",
    "next_steps",
    "pick_lines",
    "search",
    "trial_line",
    "verify",
    "write_study_report",
]
