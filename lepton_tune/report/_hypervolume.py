"""Moved to :mod:`lepton_tune.front` (one front for every package); kept for old imports."""

from __future__ import annotations

from lepton_tune.front._hypervolume import (  # noqa: F401
    REFERENCE_MARGIN,
    _slice_hypervolume,
    hypervolume,
    reference_point,
    to_loss,
)

__all__ = ["REFERENCE_MARGIN", "hypervolume", "reference_point", "to_loss"]
