"""Moved to :mod:`lepton_tune.front` (the short label is shared by every output); kept for old imports."""

from __future__ import annotations

from lepton_tune.front._label import short_label

__all__ = ["short_label"]
