"""The staged trial evaluation, cheapest stage first.

1. feasibility on this host (free; an infeasible point is recorded with its reason, never run)
2. model from the cache (trains only on a miss)  3. precision artifact
4. engine start  5. short probe (stop early when a budget is clearly missed)
6. full measurement under the study's protocol  7. accuracy through the engine
"""

from __future__ import annotations

import time
from contextlib import AbstractContextManager
from typing import Any

import optuna

from lepton_tune.config import (
    ENGINE_FIELDS,
    EngineConfig,
    HostFacts,
    ModelSpec,
    StudySpec,
    direction_of,
)
from lepton_tune.exceptions import EngineError, EngineLayoutError, LeptonTuneError
from lepton_tune.front import TrialRecord
from lepton_tune.measure import EngineJob, request_pool, run_isolated
from lepton_tune.tuning._fidelity import measure_with_fidelity
from lepton_tune.tuning._lock import HostLock
from lepton_tune.tuning._prepare import ModelPreparer
from lepton_tune.tuning._suggest import suggest_point
from lepton_tune.tuning._summary import baseline_ratios

__all__ = [
    "Infeasible",
    "Objective",
    "TrialLimitError",
    "budget_violations",
    "evaluate_point",
    "judge_record",
    "model_form_reason",
    "point_defaults",
]


class Infeasible(Exception):
    """The point cannot run here, or clearly misses a budget; not an error of the tool."""

    def __init__(self, reason: str, metrics: dict[str, float] | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.metrics = metrics or {}


class TrialLimitError(LeptonTuneError, RuntimeError):
    """A trial went past the study's time or memory limit and was stopped."""


def budget_violations(budgets: dict[str, float], metrics: dict[str, float]) -> dict[str, float]:
    """Optuna constraint values per budget: > 0 means missed (by that much, in the metric's unit)."""
    out = {}
    for name, limit in budgets.items():
        value = metrics.get(name)
        if value is None:
            continue
        out[f"budget:{name}"] = (limit - value) if direction_of(name) == "maximize" else (value - limit)
    return out


def host_feasibility(point: dict[str, Any], host: HostFacts) -> tuple[EngineConfig | None, str | None]:
    """Free checks before any work: config rules, cores, precision support, device."""
    from pydantic import ValidationError

    try:
        config = EngineConfig(**{k: point[k] for k in ENGINE_FIELDS if k in point})
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        return None, first["msg"].removeprefix("Value error, ")
    from lepton_tune.engine import (
        feasibility,  # the engine refuses the same layouts at start, with the same words
    )

    return config, feasibility(config, host.cores)


def model_form_reason(model: ModelSpec | None, config: EngineConfig) -> str | None:
    """Why the user's model form cannot be served by ``config`` (free, before any work), or None.

    An ONNX file runs only on ONNX Runtime (fp32, or int8 by ORT's own quantization). A
    ``torch.export`` program or a TorchScript file is a graph, not Python code: FX quantization
    (torch int8) and pipeline cuts need the Python module, and TorchScript does not compile.
    """
    if model is None or model.form in ("factory", "torchvision"):
        return None
    form = {"onnx": "an ONNX file", "export": "a torch.export program (.pt2)", "torchscript": "a TorchScript file"}[
        model.form
    ]
    if model.form == "onnx":
        if config.runtime != "onnxruntime":
            return (
                f"{form} ({model.label}) is served by runtime 'onnxruntime' only, not {config.runtime!r} "
                "(eager, compile and pipeline need the torch module)"
            )
        return None
    if config.precision in ("int8", "int8_dynamic") and config.runtime != "onnxruntime":
        return (
            f"precision {config.precision!r} on runtime {config.runtime!r}: torch int8 is FX quantization, which "
            f"needs the Python module, and {form} ({model.label}) is a graph; use runtime onnxruntime for int8 "
            "or give the model as a factory or torchvision name + weights"
        )
    if config.precision in ("bf16", "fp16"):
        return (
            f"precision {config.precision!r}: {form} ({model.label}) is served as saved (fp32); casting a saved "
            "graph is not supported yet. Use fp32, int8 on onnxruntime, or give the model as a factory"
        )
    if config.mode == "pipeline":
        return f"mode 'pipeline' cuts the Python module with torch.fx; {form} ({model.label}) is served whole (replica)"
    if model.form == "torchscript" and config.runtime == "compile":
        return f"runtime 'compile' does not compile {form} ({model.label}); use eager or onnxruntime"
    return None


def evaluate_point(
    point: dict[str, Any],
    spec: StudySpec,
    host: HostFacts,
    preparer: ModelPreparer,
    *,
    lock: AbstractContextManager[Any] | None = None,
    serve: str = "engine",
) -> dict[str, Any]:
    """Run stages 1-7 for one point; return the trial record (metrics, spread, stage seconds, model).

    Stages 4-7 run in an isolated process (:func:`lepton_tune.measure.run_isolated`), so the
    memory measured is that of a lean server process plus its shards, and the time and memory
    limits can stop the trial without touching the search. ``serve="in-process"`` measures the
    naive baseline instead: the model called in that process, no engine.

    Raises:
        Infeasible: the point cannot run here or misses a budget at the probe.
        TrialLimitError: the trial passed ``limits.trial_timeout_s`` or ``limits.trial_memory_mb``.
    """
    t0 = time.monotonic()
    config, reason = host_feasibility(point, host)
    if reason or config is None:
        raise Infeasible(reason or "invalid engine configuration")
    reason = model_form_reason(spec.model, config)
    if reason:
        raise Infeasible(reason)
    prepared = preparer.prepare(point)
    data = preparer.dataset
    test_x, test_y = data.test[0].numpy(), data.test[1].numpy()
    cap = spec.protocol.accuracy_samples
    if cap is not None:
        test_x, test_y = test_x[:cap], test_y[:cap]
    requests_pool = request_pool(test_x)
    stages = {"train": prepared.train_seconds, "convert": prepared.convert_seconds}
    if config.runtime in ("onnxruntime", "openvino"):
        stages["export"] = prepared.export_seconds
    record: dict[str, Any] = {"model": prepared.info}
    probe = {k: v for k, v in spec.budgets.items() if k in ("latency_p95_ms", "memory_mb", "throughput")}
    job = EngineJob(
        prepared.module,
        config,
        tuple(data.image_shape),
        requests_pool,
        spec.protocol,
        spec.prices,
        test_x=None if spec.dataset.kind == "synthetic" else test_x,
        test_y=None if spec.dataset.kind == "synthetic" else test_y,
        probe_budgets=probe if serve == "engine" else {},
        serve=serve,
    )
    with lock or HostLock():
        # The limits bound the serving phase: training is a one-time, cached cost shared by trials.
        deadline = time.monotonic() + spec.limits.trial_timeout_s if spec.limits.trial_timeout_s else None
        outcome = run_isolated(job, deadline=deadline, memory_limit_mb=spec.limits.trial_memory_mb)
    if outcome.kind == "infeasible":
        raise Infeasible(outcome.reason, outcome.record.get("metrics"))
    if outcome.kind == "limit":
        raise TrialLimitError(outcome.reason)
    if outcome.kind == "error":
        error = outcome.error()
        if isinstance(error, EngineLayoutError):  # the layout cannot be built for this model: not a failure
            raise Infeasible(str(error))
        if type(error) is EngineError and outcome.record.get("traceback"):
            raise EngineError(f"{error}\n{outcome.record['traceback']}".rstrip())
        raise error
    stages.update(outcome.record["stage_seconds"])
    stages["total"] = time.monotonic() - t0
    record.update(outcome.record, stage_seconds=stages)
    return record


def point_defaults(spec: StudySpec) -> dict[str, Any]:
    """Values of a point the space does not vary: the training recipe, and the user's model as its backbone label."""
    defaults: dict[str, Any] = {f"train.{k}": v for k, v in spec.train.model_dump().items()}
    if spec.model is not None:  # labels, baselines and dedupe say the user's model, not a registry default
        defaults["backbone"] = spec.model.label
    return defaults


class Objective:
    """The Optuna objective: suggest a point, skip duplicates, evaluate in stages, record everything."""

    def __init__(self, spec: StudySpec, host: HostFacts, host_id: str, preparer: ModelPreparer) -> None:
        self.spec, self.host, self.host_id, self.preparer = spec, host, host_id, preparer
        self.defaults = point_defaults(spec)

    def __call__(self, trial: optuna.Trial) -> list[float]:
        point, reason = suggest_point(trial, self.spec.space, self.host, defaults=self.defaults)
        _set_attrs(
            trial,
            {
                "point": point,
                "baseline": False,
                "host_id": self.host_id,
                "protocol": self.spec.protocol.model_dump(),
                "reason": "",
            },
        )
        duplicate = _find_duplicate(trial.study, point, trial.number)
        if duplicate is not None:
            return _replay(trial, duplicate)
        try:
            if reason:
                raise Infeasible(reason)
            record = measure_with_fidelity(
                trial.study, point, self.spec, lambda spec: evaluate_point(point, spec, self.host, self.preparer)
            )
        except Infeasible as exc:
            _set_attrs(trial, {"lepton_status": "infeasible", "reason": exc.reason, "metrics": exc.metrics})
            raise optuna.TrialPruned(exc.reason) from None
        except Exception as exc:
            _set_attrs(trial, {"lepton_status": "failed", "reason": f"{type(exc).__name__}: {exc}"})
            raise
        return finish_record(trial, record, self.spec)


def finish_record(trial: optuna.Trial, record: dict[str, Any], spec: StudySpec) -> list[float]:
    """Store the record on the trial, set budget constraints, return the objective values."""
    point = TrialRecord.of(trial).point
    record["metrics"].update(baseline_ratios(trial.study, point.get("backbone"), record["metrics"]))
    violations, status, reason = judge_record(spec, record)
    _set_attrs(
        trial,
        {
            **{k: v for k, v in record.items() if k != "windows"},
            "windows": record.get("windows", []),
            "lepton_status": status,
            "reason": reason,
            "noisy": status == "noisy",
        },
    )
    for key, value in violations.items():
        trial.set_constraint(key, value)
    return [float(record["metrics"][name]) for name in spec.objectives]


def judge_record(spec: StudySpec, record: dict[str, Any]) -> tuple[dict[str, float], str, str]:
    """Constraints, status and reason of a measured record.

    A record whose windows stayed busy after the retry budget (``noise.noisy``) is kept with a
    positive ``noisy`` constraint: it never joins the front, is never reused for a duplicate point
    (so the point is measured again if proposed again) and is never a recommended pick. Samplers
    that read constraints see it as infeasible; the default QMC sampler ignores values entirely.
    """
    violations = budget_violations(spec.budgets, record["metrics"])
    missed = [k.split(":", 1)[1] for k, v in violations.items() if v > 0]
    noise = record.get("noise") or {}
    if noise.get("noisy"):
        violations["noisy"] = max(float(noise.get("foreign_load_max", 0.0)), 1e-3)
        return (
            violations,
            "noisy",
            (
                f"host busy: other processes used {noise.get('foreign_load_max', 0.0):.0%} of a "
                f"core in {noise.get('noisy_windows', 0)} window(s), past the retry budget; "
                "re-run on a quiet host"
            ),
        )
    if record.get("fidelity") == "short":  # stopped at the short window: never on the front (tuning/_fidelity.py)
        violations["fidelity_short"] = 1.0
        return violations, "infeasible", str(record.get("fidelity_reason", "stopped at the short window"))
    if missed:
        return violations, "infeasible", f"misses budget(s): {', '.join(missed)}"
    return violations, "ok", ""


def _set_attrs(trial: optuna.Trial, attrs: dict[str, Any]) -> None:
    for key, value in attrs.items():
        trial.set_user_attr(key, value)


def _find_duplicate(study: optuna.Study, point: dict[str, Any], number: int) -> optuna.trial.FrozenTrial | None:
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    for past in study.get_trials(deepcopy=False, states=states):
        record = TrialRecord.of(past)
        if past.number != number and record.point == point and not record.baseline:  # noqa: SIM102
            if record.status in ("ok", "infeasible") and record.fidelity != "short":
                # never a noisy, failed or short-window one
                return past
    return None


def _replay(trial: optuna.Trial, past: optuna.trial.FrozenTrial) -> list[float]:
    """A point already evaluated in this study is not measured again: its record is reused."""
    keep = ("metrics", "spread", "stage_seconds", "model", "lepton_status", "reason")
    _set_attrs(trial, {k: past.user_attrs[k] for k in keep if k in past.user_attrs})
    trial.set_user_attr("duplicate_of", past.number)
    if past.state == optuna.trial.TrialState.PRUNED or past.values is None:
        raise optuna.TrialPruned(f"same point as trial {past.number}: {past.user_attrs.get('reason', '')}")
    for key, value in past.constraints.items():
        trial.set_constraint(key, value)
    return list(past.values)
