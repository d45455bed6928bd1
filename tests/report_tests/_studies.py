"""Real SQLite studies shaped like docs/trial-record.md, shared by the report, tracking and CLI tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.distributions import CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

OBJECTIVES = ["accuracy", "latency_p95_ms", "memory_mb"]
DIRECTIONS = ["maximize", "minimize", "minimize"]
BUDGETS = {"accuracy": 0.8, "latency_p95_ms": 50.0}
HOST = {"cpu_model": "AMD EPYC", "cores": 2, "memory_gib": 24, "device": "cpu", "torch": "2.14.1"}
DISTRIBUTIONS = {
    "backbone": CategoricalDistribution(["small_cnn", "resnet18"]),
    "precision": CategoricalDistribution(["fp32", "bf16", "int8"]),
    "shards": IntDistribution(1, 4),
    "batch_size": CategoricalDistribution([1, 8, 32]),
}

#: (state, params, metrics (accuracy, p95, memory), extra user attrs). Front: 0, 1, 6; 2 dominated by 0;
#: 3 misses the latency budget; 4 pruned infeasible; 5 failed.
ROWS: list[tuple[TrialState, dict[str, Any], tuple[float, float, float] | None, dict[str, Any]]] = [
    (
        TrialState.COMPLETE,
        {"backbone": "small_cnn", "precision": "fp32", "shards": 1, "batch_size": 1},
        (0.95, 40.0, 300.0),
        {"baseline": True},
    ),
    (
        TrialState.COMPLETE,
        {"backbone": "resnet18", "precision": "bf16", "shards": 2, "batch_size": 8},
        (0.96, 20.0, 400.0),
        {},
    ),
    (
        TrialState.COMPLETE,
        {"backbone": "resnet18", "precision": "fp32", "shards": 1, "batch_size": 8},
        (0.90, 45.0, 500.0),
        {},
    ),
    (
        TrialState.COMPLETE,
        {"backbone": "resnet18", "precision": "fp32", "shards": 2, "batch_size": 1},
        (0.97, 80.0, 200.0),
        {},
    ),
    (
        TrialState.PRUNED,
        {"backbone": "small_cnn", "precision": "int8", "shards": 4, "batch_size": 32},
        None,
        {"lepton_status": "infeasible", "reason": "shards * threads_per_shard = 4 > usable cores (2)"},
    ),
    (
        TrialState.FAIL,
        {"backbone": "resnet18", "precision": "int8", "shards": 1, "batch_size": 32},
        None,
        {"lepton_status": "failed", "reason": "EngineError: shard 0 died"},
    ),
    (
        TrialState.COMPLETE,
        {"backbone": "small_cnn", "precision": "int8", "shards": 2, "batch_size": 32},
        (0.85, 10.0, 250.0),
        {},
    ),
]


def trial_record(
    params: dict[str, Any], metrics: tuple[float, float, float] | None, extra: dict[str, Any], number: int
) -> dict[str, Any]:
    measured = {}
    if metrics is not None:
        acc, p95, mem = metrics
        measured = {
            "accuracy": acc,
            "latency_p50_ms": p95 / 2,
            "latency_p95_ms": p95,
            "latency_p99_ms": p95 * 1.2,
            "throughput": 1000.0 / p95,
            "memory_mb": mem,
            "cost_per_million": mem / 100,
        }
    attrs: dict[str, Any] = {
        "lepton_status": "ok",
        "reason": "",
        "baseline": False,
        "point": {**params, "threads_per_shard": 1, "train.epochs": 5},
        "metrics": measured,
        "spread": {"latency_p95_ms": 1.5, "throughput": 3.0} if measured else {},
        "stage_seconds": {"train": 3.0, "convert": 0.5, "start": 1.0, "measure": 4.0, "accuracy": 0.5, "total": 9.0},
        "model": {
            "recipe_hash": f"r{number}",
            "artifact_hash": f"a{number}",
            "params": 1000,
            "flops": 2e6,
            "from_cache": number > 0,
            "val_accuracy": 0.9,
        },
        "host_id": "h0st",
        "protocol": {"repeats": 3},
    }
    attrs.update(extra)
    return attrs


def add_row(study: optuna.Study, row: tuple, number: int, budgets: dict[str, float] = BUDGETS) -> None:
    state, params, metrics, extra = row
    attrs = trial_record(params, metrics, extra, number)
    constraints = None
    if state == TrialState.COMPLETE:
        m = attrs["metrics"]
        constraints = {f"budget:{k}": (v - m[k]) if k == "accuracy" else (m[k] - v) for k, v in budgets.items()}
        if any(c > 0 for c in constraints.values()):
            attrs.update(lepton_status="infeasible", reason="misses budget(s): latency_p95_ms")
    study.add_trial(
        optuna.trial.create_trial(
            params=params,
            distributions=DISTRIBUTIONS,
            state=state,
            user_attrs=attrs,
            constraints=constraints,
            values=list(metrics) if state == TrialState.COMPLETE else None,
        )
    )


def make_study(path: Path, name: str = "demo", rows: list[tuple] | None = None) -> optuna.Study:
    """A study in ``path/study.db`` with ``rows`` (default ``ROWS``) added in order."""
    path.mkdir(parents=True, exist_ok=True)
    study = optuna.create_study(storage=f"sqlite:///{path / 'study.db'}", study_name=name, directions=DIRECTIONS)
    study.set_metric_names(OBJECTIVES)
    for key, value in {
        "objectives": OBJECTIVES,
        "directions": DIRECTIONS,
        "budgets": BUDGETS,
        "host": HOST,
        "host_id": "h0st",
        "spec": {"name": name, "storage": {"url": "postgresql://bob:s3cret@db/optuna"}},
        "lepton_version": "0.1.0",
    }.items():
        study.set_user_attr(key, value)
    for number, row in enumerate(ROWS if rows is None else rows):
        add_row(study, row, number)
    return study


class RowObjective:
    """An objective that replays ``rows`` the way the tuning loop records trials (for study.optimize).

    Trial ``i`` suggests row ``i``'s params (enqueued by :func:`enqueue_rows`) and then completes,
    is pruned as infeasible, or fails, as the row says; ``interrupt_at`` raises KeyboardInterrupt.
    """

    def __init__(self, rows: list[tuple], *, budgets: dict[str, float] = BUDGETS, interrupt_at: int | None = None):
        self.rows, self.budgets, self.interrupt_at = rows, budgets, interrupt_at

    def __call__(self, trial: optuna.Trial) -> list[float]:
        state, params, metrics, extra = self.rows[trial.number]
        for name, dist in DISTRIBUTIONS.items():
            if isinstance(dist, IntDistribution):
                trial.suggest_int(name, dist.low, dist.high)
            else:
                trial.suggest_categorical(name, dist.choices)
        attrs = trial_record(params, metrics, extra, trial.number)
        for key, value in attrs.items():
            trial.set_user_attr(key, value)
        if trial.number == self.interrupt_at:
            raise KeyboardInterrupt
        if state == TrialState.PRUNED:
            raise optuna.TrialPruned(attrs["reason"])
        if state == TrialState.FAIL:
            raise RuntimeError(attrs["reason"])
        assert metrics is not None
        m = attrs["metrics"]
        for k, v in self.budgets.items():
            value = (v - m[k]) if k == "accuracy" else (m[k] - v)
            trial.set_constraint(f"budget:{k}", value)
            if value > 0:
                trial.set_user_attr("lepton_status", "infeasible")
                trial.set_user_attr("reason", f"misses budget(s): {k}")
        return list(metrics)


def enqueue_rows(study: optuna.Study, rows: list[tuple]) -> None:
    for _, params, _, _ in rows:
        study.enqueue_trial(params)


def empty_study(path: Path, name: str = "demo") -> optuna.Study:
    """A study with the lepton-tune study attributes and no trials."""
    return make_study(path, name, rows=[])
