"""Names of every measured value, and the direction that is better for each."""

from __future__ import annotations

__all__ = ["METRICS", "OBJECTIVES", "direction_of"]

#: Every value a trial measures, with the direction in which it improves.
METRICS: dict[str, str] = {
    "accuracy": "maximize",
    "accuracy_drop": "minimize",
    "latency_p50_ms": "minimize",
    "latency_p95_ms": "minimize",
    "latency_p99_ms": "minimize",
    "throughput": "maximize",
    "memory_mb": "minimize",
    "cost_per_million": "minimize",
}

#: Metrics a study may optimise (all of the above).
OBJECTIVES: tuple[str, ...] = tuple(METRICS)


def direction_of(name: str) -> str:
    """Return ``"maximize"`` or ``"minimize"`` for a metric name.

    Example:
        >>> direction_of("throughput")
        'maximize'
    """
    return METRICS[name]
