"""lepton-tune: find the cheapest way to serve an image classifier at the accuracy you need."""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["__version__", "load_bundle"]


def __getattr__(name: str) -> Any:
    # ``lepton_tune.load_bundle`` without importing torch for every ``import lepton_tune`` (PEP 562).
    if name == "load_bundle":
        from lepton_tune.bundle import load_bundle

        return load_bundle
    raise AttributeError(f"module 'lepton_tune' has no attribute {name!r}")
