"""The report's first screen as data: what was searched, the budgets, the counts, the front's quality,
and the recommended picks. Rendered by :mod:`lepton_tune.report._sections`.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front import (
    Pick,
    TrialRecord,
    budget_words,
    metric_title,
    param_name,
    recommended_picks,
    searched_params,
    study_location,
)
from lepton_tune.report._pareto import ParetoInfo

__all__ = ["HYPERVOLUME_MEANING", "SummaryInfo", "summary_info"]

#: The one sentence the report says about the hypervolume share.
HYPERVOLUME_MEANING = (
    "The share of the box between the worst acceptable corner (the budgets, or just past the worst value "
    "measured) and the best value seen on each objective that the front covers: 100% would mean one point "
    "is best on every objective at once; it can only grow as trials are added."
)


class SummaryInfo(NamedTuple):
    """What the summary and the picks show.

    Attributes:
        searched: short parameter name -> its range in words, only the parameters that varied.
        objectives: ``p95 latency (ms, lower is better)`` per objective.
        budgets: ``accuracy at least 90.00%`` per budget.
        counts: ``measured``, ``feasible``, ``infeasible``, ``failed``, ``noisy``, ``running``,
            ``baselines``, ``confirmations``.
        hypervolume_share: the front's hypervolume as a share of the best-seen box (0-1), or None.
        picks: the recommended picks (knee, then best per objective).
        baseline: the in-process baseline trial the ratios are against (first backbone's), or None.
        baseline_on_front: the baseline is itself on the front (no searched layout beats it everywhere).
        location: ``--run-dir DIR`` or ``--storage URL`` for the export command.
        host: the host in words, or "".
    """

    searched: dict[str, str]
    objectives: list[str]
    budgets: list[str]
    counts: dict[str, int]
    hypervolume_share: float | None
    picks: list[Pick]
    baseline: FrozenTrial | None
    baseline_on_front: bool
    location: str
    host: str


def _baseline(trials: list[FrozenTrial]) -> FrozenTrial | None:
    found = [t for t in trials if TrialRecord.of(t).baseline and t.state == TrialState.COMPLETE]
    if not found:
        return None
    return max(
        found, key=lambda t: (TrialRecord.of(t).baseline_kind == "in-process", not TrialRecord.of(t).noisy, -t.number)
    )


def _host(attrs: dict[str, Any]) -> str:
    host = attrs.get("host") or {}
    if not isinstance(host, dict) or not host:
        return str(attrs.get("host_id") or "")
    parts = [str(host.get("cpu_model") or "?"), f"{host.get('cores', '?')} usable cores"]
    if host.get("memory_gib"):
        parts.append(f"{host['memory_gib']} GiB")
    if host.get("device") and host.get("device") != "cpu":
        parts.append(str(host["device"]))
    return ", ".join(parts)


def summary_info(study: optuna.Study, info: ParetoInfo, *, location: str | None = None) -> SummaryInfo:
    """Read the summary from ``study`` (``info`` is its :func:`pareto_info`).

    ``location`` is how the export command names the study (``--run-dir runs``); by default it is
    worked out from the study's storage.

    Example:
        >>> # s = summary_info(study, pareto_info(study)); s.searched, [p.trial.number for p in s.picks]
        >>> # ({'backbone': 'small_cnn, resnet18', 'K': '1-2'}, [5, 7])
    """
    trials = study.get_trials(deepcopy=False)
    measured = [t for t in trials if TrialRecord.of(t).confirms is None]
    points = [TrialRecord.of(t).point or t.params for t in measured]
    searched = {param_name(k): v for k, v in searched_params(study.user_attrs, points).items()}
    counts = {
        "measured": sum(t.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL) for t in measured),
        "feasible": info.counts["feasible"],
        "infeasible": info.counts["infeasible"],
        "failed": info.counts["failed"],
        "noisy": info.counts["noisy"],
        "running": info.counts["running"],
        "baselines": sum(bool(TrialRecord.of(t).baseline) for t in measured),
        "confirmations": info.counts["confirmations"],
    }
    baseline = _baseline(measured)
    on_front = {t.number for t in info.front}
    return SummaryInfo(
        searched=searched,
        objectives=[metric_title(o, d) for o, d in zip(info.objectives, info.directions)],
        budgets=budget_words(study.user_attrs.get("budgets") or {}),
        counts=counts,
        hypervolume_share=info.hypervolume_share,
        picks=recommended_picks(study),
        baseline=baseline,
        baseline_on_front=any(TrialRecord.of(t).baseline for t in info.front if t.number in on_front),
        location=study_location(study) if location is None else location,
        host=_host(study.user_attrs),
    )
