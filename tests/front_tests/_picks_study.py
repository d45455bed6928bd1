"""A real SQLite study with every trial state the front must respect: baseline, noisy, confirmations."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from tests.report_tests._studies import DISTRIBUTIONS, ROWS, make_study

BASE_THROUGHPUT, BASE_MEMORY = 1000.0 / 40.0, 300.0  # trial 0, the in-process baseline


def metrics(acc: float, p95: float, mem: float) -> dict[str, float]:
    throughput = 1000.0 / p95
    return {
        "accuracy": acc,
        "latency_p50_ms": p95 / 2,
        "latency_p95_ms": p95,
        "latency_p99_ms": p95 * 1.2,
        "throughput": throughput,
        "memory_mb": mem,
        "cost_per_million": mem / 100,
        "speedup": throughput / BASE_THROUGHPUT,
        "memory_ratio": mem / BASE_MEMORY,
    }


def add(
    study: optuna.Study,
    params: dict[str, Any],
    values: tuple[float, float, float],
    *,
    constraints: dict[str, float] | None = None,
    **attrs: Any,
) -> None:
    user_attrs = {
        "lepton_status": "ok",
        "reason": "",
        "baseline": False,
        "metrics": metrics(*values),
        "point": {**params, "threads_per_shard": 1, "train.epochs": 5},
        **attrs,
    }
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=DISTRIBUTIONS,
            state=TrialState.COMPLETE,
            values=list(values),
            constraints=constraints or {"budget:accuracy": -0.01},
            user_attrs=user_attrs,
        )
    )


def picks_study(path: Path) -> optuna.Study:
    """``ROWS`` (front 0 baseline, 1, 6), then:

    7: noisy, would dominate everything (never on the front, never a pick);
    8: confirmation of trial 1 that measures better than trial 1 (trial 1 must stay on the front);
    trial 6 is not confirmed.
    """
    study = make_study(path)
    add(
        study,
        {"backbone": "small_cnn", "precision": "int8", "shards": 2, "batch_size": 8},
        (0.99, 5.0, 100.0),
        constraints={"budget:accuracy": -0.19, "noisy": 0.8},
        noisy=True,
        lepton_status="noisy",
        reason="host busy: other processes used 80% of a core",
    )
    first = study.trials[1].user_attrs["metrics"]
    add(
        study,
        {"backbone": "resnet18", "precision": "bf16", "shards": 2, "batch_size": 8},
        (0.97, 15.0, 350.0),
        confirms=1,
        first_metrics=first,
        reason="confirmation of trial 1",
    )
    return study


__all__ = ["ROWS", "add", "metrics", "picks_study"]
