"""The short form of a point, one place for every output that names one (progress, tables, report, hover).

``resnet18 int8 ort K2x1 b8``: backbone, precision, the runtime when it is not eager (``ort`` ONNX
Runtime, ``ov`` OpenVINO, ``compile``), shards x threads per shard, the batch size, and only then
what differs from the engine's defaults (pipeline mode, thread isolation, pinning, a batching
wait, weight sharing, a result cache, a device). The training recipe is never part of it: a study fixes it, and a point that varies it
is told apart by its trial number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["searched_params", "short_label"]

_RUNTIMES = {"onnxruntime": "ort", "compile": "compile", "openvino": "ov"}


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
        >>> short_label({"backbone": "resnet18", "precision": "bf16", "runtime": "openvino", "isolation": "thread"})
        'resnet18 bf16 ov/thread K1x1 b1'
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


def _range_text(spec: Mapping[str, Any]) -> str | None:
    """``small_cnn, resnet18`` or ``1-4``; None for a parameter that does not vary."""
    from lepton_tune.front._format import format_value

    choices = spec.get("choices")
    if choices is not None:
        return ", ".join(format_value(c) for c in choices) if len(choices) > 1 else None
    low, high = spec.get("low"), spec.get("high")
    if low is None or high is None or low == high:
        return None
    high_text = "usable cores" if high == "auto" else format_value(high)
    return f"{format_value(low)}-{high_text}" + (" (log)" if spec.get("log") else "")


def searched_params(study_attrs: Mapping[str, Any], points: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    """The point fields that varied, each with its range in words, in the short label's order.

    From the study's search space (``user_attrs["spec"]["search_space"]["params"]``) when it is
    stored; otherwise the fields that take more than one value among ``points``.

    Example:
        >>> searched_params({}, [{"backbone": "a", "shards": 1, "pool_slots": 8}, {"backbone": "b", "shards": 2,
        ...                                                                       "pool_slots": 8}])
        {'backbone': 'a, b', 'shards': '1, 2'}
    """
    from lepton_tune.front._format import PARAM_NAMES, format_value

    space = (study_attrs.get("spec") or {}).get("search_space") or {}
    params = space.get("params") if isinstance(space, Mapping) else None
    found: dict[str, str] = {}
    if isinstance(params, Mapping) and params:
        for key, spec in params.items():
            text = _range_text(spec) if isinstance(spec, Mapping) else None
            if text is not None:
                found[key] = text
    else:
        keys: list[str] = []
        for point in points:
            keys.extend(k for k in point if k not in keys)
        for key in keys:
            values = {repr(p.get(key)): p.get(key) for p in points if key in p}
            if len(values) > 1:
                ordered = sorted(
                    values.values(), key=lambda v: (isinstance(v, str), v if not isinstance(v, str) else 0, str(v))
                )
                found[key] = ", ".join(format_value(v) for v in ordered)
    order = list(PARAM_NAMES)
    return dict(sorted(found.items(), key=lambda kv: order.index(kv[0]) if kv[0] in order else len(order)))
