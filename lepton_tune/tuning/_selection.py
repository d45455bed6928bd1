"""Selection policy: pick one front point under hard limits (``export --require ... --prefer ...``)."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import optuna
from optuna.trial import FrozenTrial

from lepton_tune.config import METRICS, direction_of
from lepton_tune.exceptions import SelectionError
from lepton_tune.front import TrialRecord
from lepton_tune.tuning._summary import objectives_of, pareto_trials

__all__ = ["Requirement", "Selection", "parse_requirement", "select_trial"]

_REQ = re.compile(r"^\s*(?P<name>[a-z0-9_]+)\s*(?P<op><=|>=|<|>|==)\s*(?P<value>[-+0-9.eE]+)\s*$")


@dataclass(frozen=True)
class Requirement:
    name: str
    op: str
    value: float

    def holds(self, metrics: dict[str, float]) -> bool:
        got = metrics.get(self.name)
        if got is None:
            return False
        return {
            "<=": got <= self.value,
            ">=": got >= self.value,
            "<": got < self.value,
            ">": got > self.value,
            "==": got == self.value,
        }[self.op]

    def miss(self, metrics: dict[str, float]) -> float:
        """How far off, relative to the limit (0 when it holds)."""
        got = metrics.get(self.name)
        if got is None:
            return math.inf
        if self.holds(metrics):
            return 0.0
        return abs(got - self.value) / max(abs(self.value), 1e-9)

    def __str__(self) -> str:
        return f"{self.name}{self.op}{self.value:g}"


def parse_requirement(text: str) -> Requirement:
    """Parse ``accuracy>=0.97`` style limits.

    Example:
        >>> parse_requirement("latency_p95_ms<=20")
        Requirement(name='latency_p95_ms', op='<=', value=20.0)
    """
    match = _REQ.match(text)
    if not match:
        raise SelectionError(f"--require: {text!r} is not METRIC OP NUMBER (e.g. 'accuracy>=0.97', 'memory_mb<=800')")
    if match["name"] not in METRICS:
        raise SelectionError(f"--require: unknown metric {match['name']!r} in {text!r}; known: {', '.join(METRICS)}")
    try:
        value = float(match["value"])
    except ValueError:
        value = math.nan
    if not math.isfinite(value):
        raise SelectionError(
            f"--require: {text!r}: the limit must be a finite number, got {match['value'][:40]!r}. "
            "Write it as a plain decimal, e.g. 'accuracy>=0.97'"
        )
    return Requirement(match["name"], match["op"], value)


@dataclass(frozen=True)
class Selection:
    trial: FrozenTrial
    reason: str


def _knee(trials: list[FrozenTrial], names: list[str]) -> FrozenTrial:
    """The point closest to the ideal corner after scaling each objective to [0, 1] (0 = best)."""
    from lepton_tune.front import knee_index

    values = [[TrialRecord.of(t).metrics[name] for name in names] for t in trials]
    return trials[knee_index(values, [direction_of(name) for name in names])]


def select_trial(
    study: optuna.Study, *, requires: list[str], prefer: str | None = None, trial_number: int | None = None
) -> Selection:
    """Choose the trial to export.

    With ``trial_number`` that trial (it must be COMPLETE). Otherwise among the feasible Pareto
    front the points meeting every requirement; ``prefer`` names an objective to optimise, or
    ``knee`` (default) for the balanced point closest to the ideal corner.
    """
    if trial_number is not None:
        trials = [t for t in study.get_trials(deepcopy=False) if t.number == trial_number]
        if not trials or trials[0].state != optuna.trial.TrialState.COMPLETE:
            raise SelectionError(f"--trial {trial_number}: no COMPLETE trial with that number in {study.study_name!r}")
        return Selection(trials[0], f"trial {trial_number} chosen by --trial")
    reqs = [parse_requirement(r) for r in requires]
    prefer = prefer or "knee"
    if prefer != "knee" and prefer not in METRICS:
        raise SelectionError(f"--prefer: must be an objective ({', '.join(METRICS)}) or 'knee', got {prefer!r}")
    front = [t for t in pareto_trials(study) if TrialRecord.of(t).metrics]
    if not front:
        raise SelectionError(f"study {study.study_name!r} has no feasible Pareto front yet; run 'lepton-tune search'")
    meeting = [t for t in front if all(r.holds(TrialRecord.of(t).metrics) for r in reqs)]
    if not meeting:
        closest = sorted(front, key=lambda t: sum(r.miss(TrialRecord.of(t).metrics) for r in reqs))[:3]
        lines = [
            f"  trial {t.number}: "
            + ", ".join(f"{r.name}={TrialRecord.of(t).metrics.get(r.name, float('nan')):.4g}" for r in reqs)
            for t in closest
        ]
        raise SelectionError("no front point meets " + " and ".join(map(str, reqs)) + "; closest:\n" + "\n".join(lines))
    if prefer == "knee":
        chosen = _knee(meeting, objectives_of(study))
        why = f"the knee of the {len(meeting)} front point(s) meeting the limits (closest to the ideal corner)"
    else:
        pick = max if direction_of(prefer) == "maximize" else min
        chosen = pick(meeting, key=lambda t: TrialRecord.of(t).metrics[prefer])
        why = f"best {prefer} ({TrialRecord.of(chosen).metrics[prefer]:.4g}) among {len(meeting)} front point(s) meeting the limits"
    limits = " and ".join(map(str, reqs)) or "no limits"
    return Selection(chosen, f"trial {chosen.number}: {why} [{limits}]")
