"""Multi-fidelity on real searches: a point that cannot reach the front stops at the short window.

Real parts: digits, a trained small_cnn, warm trial processes with real shards, SQLite storage.
The front a point is judged against is set up with ``add_trial`` (a point better than any real
measurement, or none at all), so that the decision, not the host's speed, is what is tested.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from lepton_tune.config import load_study
from lepton_tune.front import TrialRecord, feasible_front, recommended_picks
from lepton_tune.tuning import SearchOptions, open_study, run_search
from lepton_tune.tuning._fidelity import optimistic_values, short_spec

OBJECTIVES = ["accuracy", "latency_p95_ms", "memory_mb"]
REQUESTS, REPEATS = 60, 3


def _spec(n_trials: int) -> Any:
    return load_study(
        {
            "name": "fidelity",
            "dataset": {"kind": "digits", "image_size": 16, "channels": 3, "split_seed": 0},
            "train": {"epochs": 1, "batch_size": 64, "seed": 0},
            "search_space": {
                "params": {
                    "backbone": "small_cnn",
                    "precision": "fp32",
                    "shards": 1,
                    "threads_per_shard": 1,
                    "batch_size": 1,
                    "pool_slots": 8,
                }
            },
            "objectives": OBJECTIVES,
            "sampler": {"name": "random", "seed": 0},
            "baseline": False,
            "n_trials": n_trials,
            "protocol": {
                "warmup": 4,
                "requests": REQUESTS,
                "repeats": REPEATS,
                "concurrency": 2,
                "probe_requests": 0,
                "accuracy_samples": 100,
                "noise_threshold": 4.0,
                "short_fraction": 0.34,
            },
        }
    )


def _add(
    study: optuna.Study,
    values: list[float],
    attrs: dict[str, Any],
    constraints: dict[str, float] | None = None,
    point: dict[str, Any] | None = None,
) -> None:
    study.add_trial(
        optuna.trial.create_trial(
            params={},
            distributions={},
            values=values,
            constraints=constraints,
            user_attrs={
                "metrics": dict(zip(OBJECTIVES, values)),
                "point": point or {"backbone": "elsewhere"},
                "lepton_status": "ok",
                "reason": "",
                **attrs,
            },
        )
    )


def _measured(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    return [t for t in study.get_trials(deepcopy=False) if "windows" in t.user_attrs]


def test_short_spec_shortens_requests_and_repeats() -> None:
    short = short_spec(_spec(1)).protocol
    assert (short.requests, short.repeats) == (round(REQUESTS * 0.34), 2)
    assert optimistic_values(
        {"metrics": {"accuracy": 0.9, "latency_p95_ms": 2.0, "memory_mb": 100.0}, "spread": {"latency_p95_ms": 0.5}},
        OBJECTIVES,
        0.1,
    ) == [0.9, 1.5, 90.0]


def test_a_point_that_cannot_reach_the_front_stops_at_the_short_window(tmp_path: Path) -> None:
    spec = _spec(2)
    options = SearchOptions(run_dir=tmp_path)
    study, _, fingerprint = open_study(spec, options)
    _add(study, [1.0, 1e-4, 1.0], {})  # better on every objective than any real measurement
    run_search(spec, options, study=study, fingerprint=fingerprint)
    (trial,) = _measured(study)
    record = TrialRecord.of(trial)
    assert trial.state == TrialState.COMPLETE
    assert record.fidelity == "short" and record.status == "infeasible"
    assert "cannot enter the front even optimistically (dominated by trial 0)" in record.reason
    assert trial.constraints["fidelity_short"] > 0
    assert len(record.windows) == 2  # the short window's two windows, not the protocol's three
    assert [t.number for t in feasible_front(study)] == [0]
    assert all(p.trial.number != trial.number for p in recommended_picks(study))


def test_a_point_that_can_reach_the_front_is_measured_in_full(tmp_path: Path) -> None:
    spec = _spec(3)
    options = SearchOptions(run_dir=tmp_path)
    study, _, fingerprint = open_study(spec, options)
    _add(study, [0.0, 1e6, 1e6], {})  # a front every real point beats
    run_search(spec, options, study=study, fingerprint=fingerprint)
    first, *later = [t for t in study.get_trials(deepcopy=False) if t.number > 0]
    record = TrialRecord.of(first)
    assert record.fidelity == "full" and record.status == "ok", record.reason
    assert len([w for w in record.windows if not w.get("discarded")]) == REPEATS
    assert record.stage_seconds["short"] > 0
    assert first.number in [t.number for t in feasible_front(study)]
    assert later and TrialRecord.of(later[0]).duplicate_of == first.number  # a full record is reused


def test_a_short_point_that_the_front_admits_later_is_remeasured_in_full(tmp_path: Path) -> None:
    spec = _spec(1)
    options = SearchOptions(run_dir=tmp_path)
    study, _, fingerprint = open_study(spec, options)
    # the real point as the search spells it (train.* included), from a one-trial search without fidelity
    probe = run_search(
        spec.model_copy(update={"protocol": spec.protocol.model_copy(update={"short_fraction": None})}),
        SearchOptions(run_dir=tmp_path / "probe"),
    )
    point = TrialRecord.of(probe.trials[0]).point
    # a short trial of that point, recorded when some front dominated it; that front is not in this study
    _add(
        study,
        [0.5, 5.0, 500.0],
        {"fidelity": "short", "lepton_status": "infeasible", "reason": "short window"},
        constraints={"fidelity_short": 1.0},
        point=point,
    )
    run_search(spec, options, study=study, fingerprint=fingerprint)  # n_trials already met: only the re-measure
    redo = [t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).remeasures == 0]
    assert len(redo) == 1
    record = TrialRecord.of(redo[0])
    assert record.fidelity == "full" and record.point == point and record.status == "ok", record.reason
    assert len([w for w in record.windows if not w.get("discarded")]) == REPEATS
    assert [t.number for t in feasible_front(study)] == [redo[0].number]
    run_search(spec, options, study=study, fingerprint=fingerprint)
    assert len([t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).remeasures == 0]) == 1, (
        "a short trial is re-measured once"
    )


@pytest.mark.parametrize("short_fraction", [0.0, 1.0])
def test_short_fraction_must_be_a_share(short_fraction: float) -> None:
    with pytest.raises(ValueError, match="short_fraction"):
        _spec(1).protocol.model_validate({**_spec(1).protocol.model_dump(), "short_fraction": short_fraction})
