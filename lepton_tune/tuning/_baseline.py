"""The naive baseline per backbone: the user's own model called in one plain process, no lepton-tune engine.

fp32, eager, ``eval()`` + ``inference_mode()``, batch 1, torch's default threads, no pinning, in a
fresh isolated process, under the study's load and measurement; the faster of "one request at a
time" and "every client at once" is kept (:mod:`lepton_tune.measure._inprocess`). Every speedup
and memory ratio is against it. A study made before this rule has an engine-hosted baseline: on
resume an in-process one is measured next to it, and the ratios use the in-process one.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from lepton_tune.config import HostFacts, ParamSpec, SearchSpaceSpec, StudySpec
from lepton_tune.tuning._lock import HostLock, _Held
from lepton_tune.tuning._objective import Infeasible, evaluate_point, judge_record, point_defaults
from lepton_tune.tuning._prepare import ModelPreparer
from lepton_tune.tuning._suggest import SUGGEST_ORDER

__all__ = ["baseline_point", "run_baselines"]

_NAIVE = {
    "precision": "fp32",
    "runtime": "eager",
    "isolation": "process",
    "shards": 1,
    "mode": "replica",
    "pin": False,
    "batch_size": 1,
    "max_wait_ms": 0.0,
    "cache_entries": 0,
    "share_weights": False,
}


def baseline_point(backbone: str, host: HostFacts, defaults: dict[str, Any], space: SearchSpaceSpec) -> dict[str, Any]:
    """The point a user gets by calling the model in one process with default threads."""
    from lepton_tune.config import default_of

    point = {name: defaults.get(name, default_of(name)) for name in SUGGEST_ORDER}
    device = space.values_of("device")[0]
    point.update(
        _NAIVE,
        backbone=backbone,
        threads_per_shard=host.cores if device == "cpu" else 1,
        device=device,
        pool_slots=max(1, int(point["pool_slots"])),
    )
    return point


def _distribution(spec: ParamSpec) -> BaseDistribution:
    if spec.choices is not None:
        return CategoricalDistribution(spec.choices)
    if spec.is_int:
        return IntDistribution(int(spec.low), int(spec.high), step=int(spec.step or 1), log=spec.log)  # type: ignore[arg-type]
    return FloatDistribution(float(spec.low), float(spec.high), step=spec.step, log=spec.log)  # type: ignore[arg-type]


def _params_in_space(
    point: dict[str, Any], space: SearchSpaceSpec
) -> tuple[dict[str, Any], dict[str, BaseDistribution]]:
    params, dists = {}, {}
    for name, spec in space.params.items():
        if isinstance(spec, ParamSpec):
            value = point[name]
            inside = value in spec.choices if spec.choices is not None else spec.low <= value <= spec.high
            if inside:
                params[name], dists[name] = value, _distribution(spec)
    return params, dists


def run_baselines(
    study: optuna.Study,
    spec: StudySpec,
    host: HostFacts,
    host_id: str,
    preparer: ModelPreparer,
    *,
    callbacks: list[Callable[[optuna.Study, optuna.trial.FrozenTrial], None]],
) -> int:
    """Evaluate the naive baseline of each backbone not yet in the study; return how many were added.

    Baselines are evaluated outside Optuna's queue and added with ``study.add_trial`` (the queue
    is unsafe with SQLite and several processes, docs/architecture.md, facts); the host lock is held and the study
    re-read under it, so two workers on one host do not both run the same baseline.
    """
    defaults = point_defaults(spec)
    backbones = (
        [str(defaults["backbone"])] if spec.model is not None else [str(b) for b in spec.space.values_of("backbone")]
    )
    added = 0
    for backbone in backbones:
        point = baseline_point(backbone, host, defaults, spec.space)
        if spec.model is not None and spec.model.form == "onnx":  # an ONNX file's own default: an ORT session
            point["runtime"] = "onnxruntime"
        lock = HostLock()
        with lock:
            if any(_settled(t, backbone) for t in study.get_trials(deepcopy=False)):
                continue  # a failed or noisy baseline, or one hosted by the engine (older study), is measured again
            params, dists = _params_in_space(point, spec.space)
            attrs: dict[str, Any] = {
                "point": point,
                "baseline": True,
                "host_id": host_id,
                "protocol": spec.protocol.model_dump(),
            }
            try:
                record = evaluate_point(point, spec, host, preparer, lock=_Held(), serve="in-process")
            except Infeasible as exc:
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    state=optuna.trial.TrialState.PRUNED,
                    user_attrs={**attrs, "lepton_status": "infeasible", "reason": exc.reason, "metrics": exc.metrics},
                )
            except Exception as exc:  # noqa: BLE001 - a failed baseline is recorded as FAIL; the study goes on
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    state=optuna.trial.TrialState.FAIL,
                    user_attrs={**attrs, "lepton_status": "failed", "reason": f"{type(exc).__name__}: {exc}"},
                )
            else:
                record["metrics"].update(speedup=1.0, memory_ratio=1.0)
                if record["metrics"].get("accuracy") is not None:  # the reference of --max-accuracy-drop
                    record["metrics"]["accuracy_drop"] = 0.0
                violations, status, reason = judge_record(spec, record)
                trial = optuna.trial.create_trial(
                    params=params,
                    distributions=dists,
                    values=[record["metrics"][o] for o in spec.objectives],
                    constraints=violations or None,
                    user_attrs={
                        **attrs,
                        **record,
                        "lepton_status": status,
                        "reason": reason,
                        "noisy": status == "noisy",
                    },
                )
            study.add_trial(trial)
            added += 1
        frozen = study.get_trials(deepcopy=False)[-1]
        for callback in callbacks:
            callback(study, frozen)
    return added


def _settled(trial: optuna.trial.FrozenTrial, backbone: str) -> bool:
    """A baseline of ``backbone`` that needs no re-measure: in-process, and measured (or infeasible) quietly."""
    attrs = trial.user_attrs
    if not attrs.get("baseline") or (attrs.get("point") or {}).get("backbone") != backbone:
        return False
    if trial.state == optuna.trial.TrialState.PRUNED:
        return True
    return (
        trial.state == optuna.trial.TrialState.COMPLETE
        and attrs.get("baseline_kind") == "in-process"
        and not attrs.get("noisy")
    )
