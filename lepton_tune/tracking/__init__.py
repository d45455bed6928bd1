"""MLflow tracking of a study: a parent run per study, a nested child run per trial (an Optuna callback)."""

from __future__ import annotations

from lepton_tune.tracking._guard import TrackingGuard, TrackingWarning
from lepton_tune.tracking._record import ChildRecord, child_record
from lepton_tune.tracking._redact import redact_url
from lepton_tune.tracking._store import default_tracking_uri, ensure_tracking_store
from lepton_tune.tracking._tracker import MLflowTracker

__all__ = [
    "ChildRecord",
    "MLflowTracker",
    "TrackingGuard",
    "TrackingWarning",
    "child_record",
    "default_tracking_uri",
    "ensure_tracking_store",
    "redact_url",
]
