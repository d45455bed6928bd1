"""Build real Optuna studies (SQLite under tmp_path) holding trials shaped like docs/trial-record.md."""

from __future__ import annotations

from pathlib import Path

import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

OBJECTIVES = ["accuracy", "latency_p95_ms", "memory_mb"]


def make_study(tmp_path: Path, rows: list[dict]) -> optuna.Study:
    study = optuna.create_study(
        storage=f"sqlite:///{tmp_path / 'study.db'}", study_name="s", directions=["maximize", "minimize", "minimize"]
    )
    study.set_metric_names(OBJECTIVES)
    study.set_user_attr("objectives", OBJECTIVES)
    for row in rows:
        metrics = row.get("metrics", {})
        state = row.get("state", TrialState.COMPLETE)
        study.add_trial(
            optuna.trial.create_trial(
                params={"batch_size": row.get("batch", 1)},
                distributions={"batch_size": CategoricalDistribution([1, 8])},
                values=[metrics[o] for o in OBJECTIVES] if state == TrialState.COMPLETE else None,
                constraints=row.get("constraints"),
                state=state,
                user_attrs={
                    "metrics": metrics,
                    "point": {"backbone": "small_cnn", "batch_size": row.get("batch", 1)},
                    "baseline": row.get("baseline", False),
                    "lepton_status": row.get("status", "ok"),
                    "reason": row.get("reason", ""),
                },
            )
        )
    return study


def m(acc: float, p95: float, mem: float, thr: float = 100.0) -> dict:
    return {"accuracy": acc, "latency_p95_ms": p95, "memory_mb": mem, "throughput": thr}
