"""lepton-tune: find the cheapest way to serve an image classifier at the accuracy you need.

The public API (each name is imported on first use, so ``import lepton_tune`` stays light)::

    import lepton_tune as lt
    result = lt.search("studies/quickstart.yaml", n_trials=4)   # what `lepton-tune search` does
    result.pareto, result.picks, result.select(require="accuracy>=0.97")
    result.export("bundle/")                                     # what `lepton-tune export` does
    lt.verify("bundle/").ok                                      # what `lepton-tune verify` does
    with lt.load_bundle("bundle/") as engine: engine.predict(images)
    lt.load_study(run_dir="lepton-runs")                         # an earlier search's result
    lt.LeptonModel("small_cnn").train().tune(n_trials=3)         # one model's life cycle
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

__all__ = [
    "ExportResult",
    "LeptonModel",
    "Point",
    "SearchResult",
    "TrialRecord",
    "VerifyResult",
    "__version__",
    "load_bundle",
    "load_study",
    "search",
    "verify",
]

if TYPE_CHECKING:
    from lepton_tune._api import (
        ExportResult,
        LeptonModel,
        Point,
        SearchResult,
        VerifyResult,
        load_study,
        search,
        verify,
    )
    from lepton_tune.bundle import load_bundle
    from lepton_tune.front import TrialRecord

_HOMES = {"load_bundle": "lepton_tune.bundle", "TrialRecord": "lepton_tune.front"}


def __getattr__(name: str) -> Any:
    # The public names without importing torch, optuna and mlflow for every ``import lepton_tune`` (PEP 562).
    if name in __all__ and name != "__version__":
        import importlib

        value = getattr(importlib.import_module(_HOMES.get(name, "lepton_tune._api")), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'lepton_tune' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
