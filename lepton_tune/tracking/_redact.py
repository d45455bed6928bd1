"""Default redaction: hide passwords in URLs before anything reaches MLflow or a warning."""

from __future__ import annotations

from lepton_tune._redact import redact_url

__all__ = ["redact_url"]
