"""Multi-fidelity measurement: a short window first, the full protocol only where it can change the front.

Optuna cannot prune a multi-objective trial (``trial.report`` takes one float; optuna #3450,
#2792, #5268), so the decision is made here, inside the objective. With
``protocol.short_fraction`` set, a new point is first measured with that share of the protocol's
requests and repeats (in its own warm trial process; accuracy is measured on the same split as
in full). Its *optimistic* values — each objective improved by the larger of its spread across
the short windows and ``short_margin`` of its value; accuracy, measured on the full split, as is —
are added to the current feasible front: if the front's hypervolume (``lepton_tune.front``, the
study's one reference-point rule, extended to include the point) grows by no more than
``short_min_gain`` of itself, the point cannot enter the front even optimistically and is stopped.

A stopped point is a COMPLETE trial with the short window's metrics as its objective values,
``fidelity: "short"``, the reason and a positive ``fidelity_short`` constraint (WAVE2 decision 3):
samplers that read constraints (TPE, NSGA-II) treat it as infeasible, QMC and random ignore
values; it is never on the front, never a pick and never replayed for a duplicate point.
:func:`remeasure_admitted` re-measures, at full fidelity and with ``study.add_trial``, any short
point that a later front would admit.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import optuna
from optuna.trial import TrialState

from lepton_tune.config import StudySpec, direction_of
from lepton_tune.front import (
    TrialRecord,
    feasible_front,
    hypervolume,
    objective_values,
    reference_point,
    study_directions,
    study_objectives,
    to_loss,
)

__all__ = ["front_gain", "measure_with_fidelity", "optimistic_values", "remeasure_admitted", "short_spec"]


def short_spec(spec: StudySpec) -> StudySpec:
    """The study with the short window's protocol: ``short_fraction`` of requests, repeats and warm-up."""
    protocol = spec.protocol
    share = protocol.short_fraction or 1.0
    short = protocol.model_copy(
        update={
            "requests": max(10, round(protocol.requests * share)),
            "repeats": max(min(2, protocol.repeats), round(protocol.repeats * share)),  # two windows give a spread
            "warmup": max(1, round(protocol.warmup * share)),
        }
    )
    return spec.model_copy(update={"protocol": short})


def optimistic_values(record: dict[str, Any], objectives: list[str], margin: float) -> list[float] | None:
    """Each objective improved by its spread (at least ``margin`` of its value); accuracy as measured."""
    metrics, spread = record.get("metrics") or {}, record.get("spread") or {}
    values = []
    for name in objectives:
        value = metrics.get(name)
        if not isinstance(value, (int, float)):
            return None
        slack = 0.0 if name == "accuracy" else max(float(spread.get(name, 0.0)), margin * abs(float(value)))
        values.append(float(value) + slack if direction_of(name) == "maximize" else float(value) - slack)
    return values


def front_gain(study: optuna.Study, values: list[float]) -> tuple[float, int | None]:
    """How much ``values`` would raise the feasible front's hypervolume, as a share of it (inf: empty front).

    Also returns one front trial that dominates ``values`` (None when none does). The reference point
    is the study's rule over every COMPLETE measurement plus ``values``, so a point outside the
    current box still counts.
    """
    objectives, directions = study_objectives(study), study_directions(study)
    front = [(t, objective_values(t, objectives)) for t in feasible_front(study)]
    front = [(t, v) for t, v in front if v is not None]
    if not front:
        return float("inf"), None
    measured = [
        objective_values(t, objectives)
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if not TrialRecord.of(t).noisy and TrialRecord.of(t).confirms is None
    ]
    losses = to_loss(np.array([v for v in measured if v is not None] + [values]), directions)
    ref = reference_point(losses, objectives, directions, study.user_attrs.get("budgets") or {})
    front_losses = to_loss(np.array([v for _, v in front]), directions)
    point = to_loss(np.array([values]), directions)
    before = hypervolume(front_losses, ref)
    after = hypervolume(np.vstack([front_losses, point]), ref)
    dominator = next((t.number for t, v in front if np.all(to_loss(np.array([v]), directions) <= point)), None)
    return ((after - before) / before if before > 0 else float("inf")), dominator


def _verdict(study: optuna.Study, record: dict[str, Any], spec: StudySpec) -> str | None:
    """None when the point must be measured in full; else why it stops at the short window."""
    protocol = spec.protocol
    values = optimistic_values(record, list(spec.objectives), protocol.short_margin)
    if values is None:
        return None
    metrics = dict(zip(spec.objectives, values))
    for name, limit in spec.budgets.items():
        value = metrics.get(name)
        if value is not None and (value < limit if direction_of(name) == "maximize" else value > limit):
            return f"short window: misses the budget {name} = {limit:g} even optimistically ({value:.4g})"
    gain, dominator = front_gain(study, values)
    if gain > protocol.short_min_gain:
        return None
    by = f" (dominated by trial {dominator})" if dominator is not None else ""
    return (
        f"short window: cannot enter the front even optimistically{by}: hypervolume gain {gain:.1%} "
        f"<= protocol.short_min_gain {protocol.short_min_gain:.1%}"
    )


def measure_with_fidelity(
    study: optuna.Study, point: dict[str, Any], spec: StudySpec, evaluate: Callable[[StudySpec], dict[str, Any]]
) -> dict[str, Any]:
    """The record of ``point``: full protocol, or the short window only when it cannot enter the front.

    ``evaluate(spec)`` measures the point under ``spec`` (``evaluate_point`` bound to the point).
    """
    if spec.protocol.short_fraction is None:
        return evaluate(spec)
    short = evaluate(short_spec(spec))
    reason = _verdict(study, short, spec)
    if reason is not None:
        return {**short, "fidelity": "short", "fidelity_reason": reason}
    full = evaluate(spec)
    full["stage_seconds"]["short"] = short["stage_seconds"].get("total", 0.0)
    return {**full, "fidelity": "full"}


def remeasure_admitted(study: optuna.Study, spec: StudySpec, evaluate_full: Any, finish: Any) -> list[int]:
    """Re-measure at full fidelity each short trial that the current front would admit; add it with add_trial.

    ``evaluate_full(point)`` measures a point with the full protocol; ``finish(point, record)`` turns a
    record into ``(values, constraints, attrs)``. A front only gains dominating points, so a point stopped
    once rarely returns; it does when the trial that dominated it stops counting (a confirmation
    that moved it, another worker's trials). Returns the numbers of the re-measured short trials.
    """
    done = {TrialRecord.of(t).remeasures for t in study.get_trials(deepcopy=False)}
    redone = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        record = TrialRecord.of(trial)
        if record.fidelity != "short" or trial.number in done:
            continue
        if _verdict(study, {"metrics": record.metrics, "spread": record.spread}, spec) is not None:
            continue
        started = time.monotonic()
        full = evaluate_full(record.point)
        full["stage_seconds"]["total"] = time.monotonic() - started
        values, constraints, attrs = finish(record.point, {**full, "fidelity": "full"})
        study.add_trial(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=trial.distributions,
                values=values,
                constraints=constraints or None,
                user_attrs={
                    **attrs,
                    "point": record.point,
                    "remeasures": trial.number,
                    "protocol": spec.protocol.model_dump(),
                },
            )
        )
        redone.append(trial.number)
    return redone
