"""MLflow tracking of a study: a parent run per study, a nested child run per trial (an Optuna callback)."""

from __future__ import annotations

from lepton_tune.tracking._guard import TrackingGuard, TrackingWarning
from lepton_tune.tracking._links import StudyLinks, study_links
from lepton_tune.tracking._record import ChildRecord, child_record
from lepton_tune.tracking._redact import redact_url
from lepton_tune.tracking._store import (
    default_tracking_uri,
    ensure_tracking_store,
    resolve_tracking_uri,
    study_tracking_uri,
)
from lepton_tune.tracking._tracker import MLflowTracker
from lepton_tune.tracking._views import StudyViews, experiment_tags, run_url, runs_url

__all__ = [
    "ChildRecord",
    "MLflowTracker",
    "StudyLinks",
    "StudyViews",
    "TrackingGuard",
    "TrackingWarning",
    "child_record",
    "default_tracking_uri",
    "ensure_tracking_store",
    "experiment_tags",
    "redact_url",
    "resolve_tracking_uri",
    "run_url",
    "runs_url",
    "study_links",
    "study_tracking_uri",
]
