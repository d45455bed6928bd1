"""The short form of a point, one place for every output that names one (progress, tables, report, hover).

``resnet18 int8 ort K2x1 b8``: backbone, precision, the runtime when it is not eager, shards x
threads per shard, the batch size, and only then what differs from the engine's defaults
(pipeline mode, thread isolation, pinning, a batching wait, weight sharing, a result cache, a
device). The training recipe is never part of it: a study fixes it, and a point that varies it
is told apart by its trial number.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["short_label"]

_RUNTIMES = {"onnxruntime": "ort", "compile": "compile"}


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def short_label(point: Mapping[str, Any]) -> str:
    """A few words that name ``point`` (a trial's ``point`` attribute or params).

    Example:
        >>> short_label({"backbone": "resnet18", "precision": "int8", "runtime": "onnxruntime", "shards": 2,
        ...              "threads_per_shard": 1, "batch_size": 8, "pool_slots": 16, "train.lr": 0.003})
        'resnet18 int8 ort K2x1 b8'
        >>> short_label({"backbone": "small_cnn", "shards": 2, "mode": "pipeline", "pin": True, "max_wait_ms": 2.0})
        'small_cnn K2x1 b1 pipe pin wait2ms'
    """
    words = [str(point[key]) for key in ("backbone", "precision") if point.get(key) is not None]
    runtime = point.get("runtime") or "eager"
    if runtime != "eager":
        words.append(_RUNTIMES.get(runtime, str(runtime)) + ("/thread" if point.get("isolation") == "thread" else ""))
    words.append(f"K{_number(point.get('shards', 1))}x{_number(point.get('threads_per_shard', 1))}")
    words.append(f"b{_number(point.get('batch_size', 1))}")
    if point.get("mode") == "pipeline":
        words.append("pipe")
    if point.get("isolation") == "thread" and runtime == "eager":
        words.append("thread")
    if point.get("pin"):
        words.append("pin")
    if point.get("max_wait_ms"):
        words.append(f"wait{_number(point['max_wait_ms'])}ms")
    if point.get("share_weights"):
        words.append("shared")
    if point.get("cache_entries"):
        words.append(f"cache{_number(point['cache_entries'])}")
    device = point.get("device")
    if device and device != "cpu":
        words.append(str(device))
    return " ".join(words)
