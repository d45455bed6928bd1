"""Names, units and number formats shared by the report, ``show`` and the progress lines.

One rule per metric: accuracy in % with 2 decimals, latencies in ms with 2 decimals, throughput
in img/s, memory in MiB, cost in USD per million images, ratios as ``2.25x``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

__all__ = [
    "METRIC_NAMES",
    "METRIC_UNITS",
    "PARAM_NAMES",
    "budget_words",
    "format_metric",
    "format_ratio",
    "format_value",
    "metric_title",
    "param_name",
    "with_first",
]

#: What a reader calls each metric.
METRIC_NAMES: dict[str, str] = {
    "accuracy": "accuracy",
    "accuracy_drop": "accuracy drop",
    "latency_p50_ms": "p50 latency",
    "latency_p95_ms": "p95 latency",
    "latency_p99_ms": "p99 latency",
    "throughput": "throughput",
    "memory_mb": "memory",
    "cost_per_million": "cost",
    "device_memory_mb": "device memory",
}

#: Unit of each metric as an axis or a column shows it.
METRIC_UNITS: dict[str, str] = {
    "accuracy": "%",
    "accuracy_drop": "pt",
    "latency_p50_ms": "ms",
    "latency_p95_ms": "ms",
    "latency_p99_ms": "ms",
    "throughput": "img/s",
    "memory_mb": "MiB",
    "cost_per_million": "USD per M images",
    "device_memory_mb": "MiB",
}

#: Short column names of the point's fields (the training recipe keeps its own names).
PARAM_NAMES: dict[str, str] = {
    "backbone": "backbone",
    "precision": "prec",
    "runtime": "runtime",
    "isolation": "isolation",
    "shards": "K",
    "threads_per_shard": "thr",
    "batch_size": "batch",
    "mode": "mode",
    "pin": "pin",
    "max_wait_ms": "wait ms",
    "share_weights": "shared",
    "pool_slots": "slots",
    "cache_entries": "cache",
    "device": "device",
}

_MAXIMIZE = {"accuracy", "throughput"}


def param_name(key: str) -> str:
    """The short name of a point field: ``shards`` -> ``K``, ``batch_size`` -> ``batch``."""
    return PARAM_NAMES.get(key, key)


def metric_title(name: str, direction: str | None = None) -> str:
    """``p95 latency (ms, lower is better)``; without ``direction`` just ``p95 latency (ms)``."""
    unit = METRIC_UNITS.get(name)
    parts = [unit] if unit else []
    if direction:
        parts.append("higher is better" if direction == "maximize" else "lower is better")
    label = METRIC_NAMES.get(name, name)
    return f"{label} ({', '.join(parts)})" if parts else label


def format_metric(name: str, value: Any, *, unit: bool = True) -> str:
    """One metric value with its unit and a sensible precision; ``-`` when missing.

    Example:
        >>> format_metric("latency_p95_ms", 1.93014), format_metric("accuracy", 0.990741)
        ('1.93 ms', '99.07%')
        >>> format_metric("throughput", 3259.3), format_metric("memory_mb", 570.15)
        ('3,259 img/s', '570 MiB')
    """
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
        return "-"
    if name == "accuracy":
        return f"{value * 100:.2f}%" if unit else f"{value * 100:.2f}"
    if name == "accuracy_drop":  # points of accuracy below the user's own model (negative: above it)
        text, suffix = f"{value:.2f}", " pt"
    elif name.endswith("_ms"):
        text, suffix = f"{value:.2f}", " ms"
    elif name == "throughput":
        text, suffix = (f"{value:,.0f}" if value >= 100 else f"{value:.1f}"), " img/s"
    elif name.endswith("_mb"):
        text, suffix = (f"{value:,.0f}" if value >= 10 else f"{value:.1f}"), " MiB"
    elif name == "cost_per_million":
        text, suffix = f"{value:.4f}", " USD/M img"
    elif name in ("speedup", "memory_ratio"):
        return format_ratio(value)
    else:
        text, suffix = f"{value:.4g}", ""
    return text + suffix if unit else text


def format_ratio(value: Any) -> str:
    """``2.25x``; ``-`` when missing."""
    if not isinstance(value, (int, float)) or not math.isfinite(value):
        return "-"
    return f"{value:.2f}x"


def format_value(value: Any) -> str:
    """A point field's value: ``yes``/``no`` for booleans, ``2`` for ``2.0``."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def with_first(name: str, now: Any, first: Any) -> str:
    """A confirmed value with the search's first measurement beside it: ``1.93 ms (search: 1.71)``."""
    text = format_metric(name, now)
    was = format_metric(name, first, unit=False)
    if first is None or was == format_metric(name, now, unit=False):
        return text
    return f"{text} (search: {was})"


def budget_words(budgets: Mapping[str, float]) -> list[str]:
    """Budgets as sentences: ``accuracy at least 90.00%``, ``p95 latency at most 20.00 ms``."""
    out = []
    for name, limit in budgets.items():
        bound = "at least" if name in _MAXIMIZE else "at most"
        out.append(f"{METRIC_NAMES.get(name, name)} {bound} {format_metric(name, limit)}")
    return out
