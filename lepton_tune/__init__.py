"""lepton-tune: find the cheapest way to serve an image classifier at the accuracy you need."""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
