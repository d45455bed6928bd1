"""Confirm a chosen point before it is exported: the winner's curse.

The front is picked out of many noisy measurements, so its points are lucky on average: a freshly
exported front point re-measured by ``verify`` on a quiet host came out worse than recorded 3 times
out of 3 (p95 4.0 -> up to 7.1 ms, 1661 -> 1397 img/s). Before a point is exported it is measured
again in a fresh trial process with fresh windows, and that confirmation is what the bundle
records and what is shown; the search's first measurement stays beside it (``first_metrics``).

The confirmation is added to the study as a trial of its own (``add_trial``, never the queue) with
``confirms = N``: it is logged like any trial, but never joins the front (it would list the point
twice) and is never confirmed again.
"""

from __future__ import annotations

import uuid
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.config import StudySpec, host_facts
from lepton_tune.exceptions import HostMismatchError
from lepton_tune.front import TrialRecord
from lepton_tune.tuning._lock import HostLock, _Held
from lepton_tune.tuning._objective import evaluate_point, judge_record
from lepton_tune.tuning._prepare import ModelPreparer
from lepton_tune.tuning._summary import baseline_ratios, objectives_of

__all__ = ["confirm_trial", "confirmation_of", "confirmed_here"]

#: This process's mark on the confirmations it measured (several workers may finish one study).
_WORKER = uuid.uuid4().hex[:12]


def confirmed_here(trial: FrozenTrial) -> bool:
    """True if this process measured the confirmation ``trial`` (not another worker, not an earlier run)."""
    return TrialRecord.of(trial).confirmed_by == _WORKER


def confirmation_of(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The newest quiet confirmation of trial ``number`` already in the study, if any."""
    found = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if TrialRecord.of(t).confirms == number and not TrialRecord.of(t).noisy
    ]
    return found[-1] if found else None


def confirm_trial(study: optuna.Study, trial: FrozenTrial, *, reuse: bool = True) -> FrozenTrial:
    """Measure ``trial``'s point again in a fresh process; add and return the confirming trial.

    Example:
        >>> # confirmed = confirm_trial(study, selection.trial)
        >>> # TrialRecord.of(confirmed).metrics["latency_p95_ms"], TrialRecord.of(confirmed).first_metrics[...]

    Raises:
        HostMismatchError: this host's fingerprint differs from the study's (a confirmation measured
            here would not be comparable); export with ``--no-confirm`` to keep the study's numbers.
    """
    from lepton_tune.measure import host_fingerprint, host_id

    if TrialRecord.of(trial).confirms is not None:
        return trial
    if reuse and (done := confirmation_of(study, trial.number)) is not None:
        return done
    recorded = study.user_attrs.get("host_id")
    here = host_id(host_fingerprint())
    if recorded and recorded != here:
        raise HostMismatchError(
            f"study {study.study_name!r} was measured on host {recorded}, this is {here}: a confirmation measured here "
            "would not compare. Export on the study's host, or pass --no-confirm to export the search's measurement"
        )
    spec = StudySpec.model_validate(study.user_attrs["spec"])
    point = dict(TrialRecord.of(trial).point)
    baseline = bool(TrialRecord.of(trial).baseline)
    with HostLock():  # several workers on this host finishing together confirm a pick once
        if reuse and (done := confirmation_of(study, trial.number)) is not None:
            return done
        record = evaluate_point(
            point, spec, host_facts(), ModelPreparer(spec), lock=_Held(), serve="in-process" if baseline else "engine"
        )
        record["metrics"].update(baseline_ratios(study, point.get("backbone"), record["metrics"]))
        violations, status, reason = judge_record(spec, record)
        attrs: dict[str, Any] = {
            **record,
            "point": point,
            "confirms": trial.number,
            "first_metrics": TrialRecord.of(trial).metrics,
            "baseline": False,
            "host_id": here,
            "protocol": spec.protocol.model_dump(),
            "lepton_status": status,
            "reason": reason or f"confirmation of trial {trial.number}",
            "noisy": status == "noisy",
            "confirmed_by": _WORKER,
        }
        study.add_trial(
            optuna.trial.create_trial(
                params=trial.params,
                distributions=trial.distributions,
                state=TrialState.COMPLETE,
                values=[float(record["metrics"][name]) for name in objectives_of(study)],
                constraints=violations or None,
                user_attrs=attrs,
            )
        )
    return [t for t in study.get_trials(deepcopy=False) if TrialRecord.of(t).confirms == trial.number][-1]
