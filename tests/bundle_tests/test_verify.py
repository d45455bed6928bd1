"""The verify rules (stated tolerances, worse direction only; accuracy within one test image)."""

from __future__ import annotations

import pytest

from lepton_tune.bundle import DEFAULT_TOLERANCES, compare_metrics, parse_tolerances
from lepton_tune.exceptions import BundleError

RECORDED = {
    "latency_p50_ms": 10.0,
    "latency_p95_ms": 20.0,
    "latency_p99_ms": 30.0,
    "throughput": 100.0,
    "memory_mb": 500.0,
    "cost_per_million": 1.0,
    "accuracy": 0.9,
}


def _status(measured: dict[str, float], **kw) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {c.name: c.status for c in compare_metrics(RECORDED, measured, accuracy_samples=200, **kw)}


def test_stated_defaults() -> None:
    assert DEFAULT_TOLERANCES == {"latency_p50_ms": 0.15, "latency_p95_ms": 0.15, "throughput": 0.10, "memory_mb": 0.10}


def test_within_and_better_pass_worse_fails() -> None:
    assert set(_status(dict(RECORDED)).values()) <= {"ok", "info"}
    better = {**RECORDED, "latency_p95_ms": 5.0, "throughput": 300.0, "memory_mb": 100.0}
    assert _status(better)["latency_p95_ms"] == "ok" and _status(better)["throughput"] == "ok"
    worse = {
        **RECORDED,
        "latency_p50_ms": 11.6,
        "latency_p95_ms": 22.9,
        "throughput": 89.0,
        "memory_mb": 551.0,
        "latency_p99_ms": 300.0,
        "cost_per_million": 9.0,
    }
    assert _status(worse) == {
        "latency_p50_ms": "outside",
        "latency_p95_ms": "ok",
        "latency_p99_ms": "info",
        "throughput": "outside",
        "memory_mb": "outside",
        "cost_per_million": "info",
        "accuracy": "ok",
    }


def test_accuracy_within_one_test_image_either_way() -> None:
    assert _status({"accuracy": 0.905})["accuracy"] == "ok"
    assert _status({"accuracy": 0.895})["accuracy"] == "ok"
    assert _status({"accuracy": 0.89})["accuracy"] == "outside"
    assert _status({"accuracy": 0.92})["accuracy"] == "outside"
    assert _status({"accuracy": 0.92}, tolerances={"accuracy": 0.05})["accuracy"] == "ok"


def test_metric_missing_on_either_side_is_skipped() -> None:
    assert list(_status({"throughput": 100.0})) == ["throughput"]


def test_parse_tolerances() -> None:
    assert parse_tolerances(None) == {}
    assert parse_tolerances(["0.5"]) == dict.fromkeys(DEFAULT_TOLERANCES, 0.5)
    assert parse_tolerances(["0.5", "memory_mb=0.2", "accuracy=0.01"])["memory_mb"] == 0.2
    with pytest.raises(BundleError, match=r"--tolerance: 'x=y' is not FRACTION or METRIC=FRACTION"):
        parse_tolerances(["x=y"])
    with pytest.raises(BundleError, match=r"unknown metric 'latency_p99_ms'.*judged metrics: latency_p50_ms"):
        parse_tolerances(["latency_p99_ms=0.2"])
