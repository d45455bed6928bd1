"""A finished trial as MLflow params, metrics, tags and a JSON artifact (pure data, no MLflow calls)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

from optuna.trial import FrozenTrial, TrialState

__all__ = ["ChildRecord", "child_record", "metric_key", "run_name", "run_status", "study_tags", "trial_json"]

_BAD_KEY = re.compile(r"[^\w\-./ ]")
_MAX_VALUE = 6000
#: trial state -> MLflow run status (an infeasible, pruned trial ended normally)
_STATUS = {TrialState.COMPLETE: "FINISHED", TrialState.PRUNED: "FINISHED", TrialState.FAIL: "FAILED"}


class ChildRecord(NamedTuple):
    """What one child run holds: ``params``/``tags`` as strings, ``metrics`` as finite floats."""

    run_name: str
    params: dict[str, str]
    metrics: dict[str, float]
    tags: dict[str, str]
    artifact: str


def metric_key(name: str) -> str:
    """A name MLflow accepts (letters, digits, ``_ - . / space``); others become ``_``.

    Example:
        >>> metric_key("budget:latency_p95_ms")
        'budget_latency_p95_ms'
    """
    return _BAD_KEY.sub("_", str(name))


def run_status(trial: FrozenTrial) -> str:
    """``FINISHED`` for COMPLETE and PRUNED (infeasible), ``FAILED`` for FAIL, ``KILLED`` otherwise."""
    return _STATUS.get(trial.state, "KILLED")


def run_name(trial: FrozenTrial) -> str:
    """What the point is, as the runs table shows it: ``t12 resnet18 int8 ort K2x1 b8``.

    The trial number, the short point label, then what sets the trial apart: ``baseline``,
    ``noisy``, ``confirms t5`` (a re-measure before export), ``duplicate of t3``.

    Example:
        >>> # run_name(study.trials[12]) -> 't12 resnet18 int8 ort K2x1 b8'
    """
    from lepton_tune.front import short_label

    attrs = trial.user_attrs
    words = [f"t{trial.number}", short_label(attrs.get("point") or trial.params)]
    if attrs.get("baseline"):
        words.append("baseline")
    if attrs.get("noisy"):
        words.append("noisy")
    if attrs.get("confirms") is not None:
        words.append(f"confirms t{attrs['confirms']}")
    if attrs.get("duplicate_of") is not None:
        words.append(f"duplicate of t{attrs['duplicate_of']}")
    return " ".join(words)[:250]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _text(value: Any, redact: Callable[[str], str]) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return redact(text)[:_MAX_VALUE]


def trial_json(trial: FrozenTrial, redact: Callable[[str], str] = str) -> str:
    """The raw trial record (state, values, params, constraints, every user attribute) as JSON text."""
    raw = {
        "number": trial.number,
        "state": trial.state.name,
        "values": trial.values,
        "params": trial.params,
        "constraints": trial.constraints,
        "user_attrs": trial.user_attrs,
        "datetime_start": trial.datetime_start,
        "datetime_complete": trial.datetime_complete,
    }
    return redact(json.dumps(raw, indent=2, default=str, sort_keys=True))


def _metrics(trial: FrozenTrial, objectives: list[str]) -> dict[str, float]:
    attrs = trial.user_attrs
    out: dict[str, float] = {}
    if trial.state == TrialState.COMPLETE and trial.values is not None:
        out.update((metric_key(o), float(v)) for o, v in zip(objectives, trial.values) if math.isfinite(v))
    sources: list[tuple[Mapping[str, Any], str]] = [
        (attrs.get("metrics") or {}, "{}"),
        (attrs.get("spread") or {}, "{}_spread"),
        (attrs.get("stage_seconds") or {}, "{}_seconds"),
    ]
    model = attrs.get("model") or {}
    sources.append(({k: model.get(k) for k in ("params", "flops", "val_accuracy")}, "model_{}"))
    sources.append((trial.constraints, "{}"))
    for mapping, pattern in sources:
        for key, value in mapping.items():
            number = _number(value)
            if number is not None:
                out[metric_key(pattern.format(key))] = number
    return out


def child_record(
    trial: FrozenTrial,
    *,
    study_name: str,
    objectives: list[str],
    host: Mapping[str, Any] | None = None,
    redact: Callable[[str], str] = str,
) -> ChildRecord:
    """Everything a trial's child run logs.

    Params: every field of the trial's ``point`` (else ``trial.params``). Metrics: the objective
    values, ``metrics``, ``<name>_spread``, ``<stage>_seconds``, ``model_params/flops/val_accuracy`` and
    the budget constraints (``budget_<metric>``, > 0 means missed). Tags: ``trial_number``, ``state``,
    ``lepton_status``, ``feasible``, ``reason``, ``baseline`` (+ ``baseline_kind``/``baseline_form``), ``noisy``, ``backbone``, ``precision``, ``host_id``,
    ``host.<key>`` for the study's host fingerprint, ``study_name``. Every string passes ``redact``.
    The run is named by :func:`run_name` (``t12 resnet18 int8 ort K2x1 b8``).

    Example:
        >>> # child_record(study.trials[0], study_name="s", objectives=["accuracy"]).metrics["accuracy"]
    """
    attrs = trial.user_attrs
    point = attrs.get("point") or trial.params
    params = {metric_key(k): _text(v, redact) for k, v in point.items()}
    feasible = trial.state == TrialState.COMPLETE and all(v <= 0 for v in trial.constraints.values())
    tags = {
        "trial_number": str(trial.number),
        "state": trial.state.name,
        "lepton_status": str(attrs.get("lepton_status", trial.state.name.lower())),
        "feasible": str(feasible).lower(),
        "reason": _text(attrs.get("reason", ""), redact),
        "baseline": str(bool(attrs.get("baseline"))).lower(),
        "noisy": str(bool(attrs.get("noisy"))).lower(),
        "study_name": _text(study_name, redact),
        "lepton.role": "trial",
    }
    for key in ("backbone", "precision"):
        if key in point:
            tags[key] = _text(point[key], redact)
    if attrs.get("host_id"):
        tags["host_id"] = _text(attrs["host_id"], redact)
    if attrs.get("baseline"):
        tags["baseline_kind"] = _text(attrs.get("baseline_kind", "engine-hosted (older study)"), redact)
        if attrs.get("baseline_form"):
            tags["baseline_form"] = _text(attrs["baseline_form"], redact)
    if "duplicate_of" in attrs:
        tags["duplicate_of"] = str(attrs["duplicate_of"])
    tags.update({metric_key(f"host.{k}"): _text(v, redact) for k, v in (host or {}).items()})
    if attrs.get("confirms") is not None:
        tags["confirms"] = str(attrs["confirms"])
    return ChildRecord(
        _text(run_name(trial), redact), params, _metrics(trial, objectives), tags, trial_json(trial, redact)
    )


def study_tags(
    user_attrs: Mapping[str, Any],
    *,
    study_name: str,
    objectives: list[str],
    directions: list[str],
    redact: Callable[[str], str] = str,
) -> dict[str, str]:
    """Tags of the parent run: study name, objectives, directions, budgets, host fingerprint."""
    tags = {
        "lepton.role": "study",
        "lepton.study_name": _text(study_name, redact),
        "study_name": _text(study_name, redact),
        "objectives": ",".join(objectives),
        "directions": ",".join(directions),
        "budgets": _text(user_attrs.get("budgets") or {}, redact),
    }
    for key in ("host_id", "lepton_version", "spec_source"):
        if user_attrs.get(key):
            tags[key] = _text(user_attrs[key], redact)
    tags.update({metric_key(f"host.{k}"): _text(v, redact) for k, v in (user_attrs.get("host") or {}).items()})
    return tags
