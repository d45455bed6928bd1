"""Recommended picks: the knee of the front and the best point on each objective, one list for all.

The report, ``show`` and the end of ``search`` (which confirms them) read the same list, so they
never disagree on what to deploy. A pick is a front point (never noisy, never a confirmation);
the in-process baseline is not a pick (it is what the picks are compared with), though the list
says when it is itself on the front.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import optuna
from optuna.trial import FrozenTrial, TrialState

from lepton_tune.front._format import METRIC_NAMES
from lepton_tune.front._front import (
    feasible_front,
    objective_values,
    study_directions,
    study_objectives,
)
from lepton_tune.front._label import short_label
from lepton_tune.front._record import TrialRecord

__all__ = [
    "MAX_PICKS",
    "Pick",
    "confirmation_for",
    "export_command",
    "knee_index",
    "recommended_picks",
    "study_location",
]

#: How many distinct points the picks hold at most (each is confirmed at the end of a search).
MAX_PICKS = 3


class Pick(NamedTuple):
    """One recommended point.

    Attributes:
        trial: the front trial (its number is what ``export --trial`` takes).
        roles: why it is recommended, e.g. ``["knee", "lowest p95 latency"]``.
        label: the short point form (``small_cnn int8 K2x1 b16 pipe``).
        confirmation: the newest quiet re-measure of it in a fresh process, if any.
        metrics: the numbers to show: the confirmation's when there is one, else the search's.
        first_metrics: the search's own measurement of the point.
    """

    trial: FrozenTrial
    roles: list[str]
    label: str
    confirmation: FrozenTrial | None
    metrics: dict[str, Any]
    first_metrics: dict[str, Any]

    @property
    def confirmed(self) -> bool:
        return self.confirmation is not None


def knee_index(values: Sequence[Sequence[float]], directions: Sequence[str]) -> int:
    """Index of the point closest to the ideal corner after scaling each objective to [0, 1] (0 = best).

    Ties go to the earlier point.

    Example:
        >>> knee_index([[0.9, 10.0], [0.8, 2.0], [0.5, 1.0]], ["maximize", "minimize"])
        1
    """
    return int(np.argmin(_knee_distances(values, directions)))


def _knee_distances(values: Sequence[Sequence[float]], directions: Sequence[str]) -> np.ndarray:
    data = np.asarray(values, dtype=float).reshape(len(values), len(directions))
    scaled = np.zeros_like(data)
    for j, direction in enumerate(directions):
        lo, hi = data[:, j].min(), data[:, j].max()
        span = (hi - lo) or 1.0
        scaled[:, j] = ((hi - data[:, j]) if direction == "maximize" else (data[:, j] - lo)) / span
    distances: np.ndarray = np.sqrt((scaled**2).sum(axis=1))
    return distances


def confirmation_for(study: optuna.Study, number: int) -> FrozenTrial | None:
    """The newest quiet confirmation (``confirms == number``, not noisy) of trial ``number``, if any."""
    found = [
        t
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        if TrialRecord.of(t).confirms == number and not TrialRecord.of(t).noisy
    ]
    return found[-1] if found else None


def _best_role(name: str, direction: str) -> str:
    word = "highest" if direction == "maximize" else "lowest"
    if name == "accuracy":
        word = "best"
    return f"{word} {METRIC_NAMES.get(name, name)}"


def recommended_picks(study: optuna.Study, *, limit: int = MAX_PICKS) -> list[Pick]:
    """The knee of the front, then the best front point on each objective, de-duplicated, at most ``limit``.

    Among points tied on an objective the one nearest the knee wins, so ties merge into fewer picks.

    Example:
        >>> # [(p.trial.number, p.roles) for p in recommended_picks(study)]
        >>> # [(5, ['knee', 'best accuracy', 'lowest p95 latency']), (7, ['lowest memory'])]
    """
    objectives, directions = study_objectives(study), study_directions(study)
    front = [t for t in feasible_front(study) if not TrialRecord.of(t).baseline]
    measured = [(t, v) for t in front if (v := objective_values(t, objectives)) is not None]
    front, values = [t for t, _ in measured], [v for _, v in measured]
    if not front:
        return []
    distance = _knee_distances(values, directions)
    knee = int(np.argmin(distance))
    data = np.asarray(values, dtype=float)
    order: list[int] = [knee]
    roles: dict[int, list[str]] = {knee: ["knee"]}
    for j, (name, direction) in enumerate(zip(objectives, directions)):
        column = data[:, j]
        best = column.max() if direction == "maximize" else column.min()
        tied = [i for i in range(len(front)) if math.isclose(column[i], best, rel_tol=1e-12, abs_tol=1e-12)]
        i = min(tied, key=lambda k: (k != knee, distance[k]))
        if i not in roles:
            if len(order) >= limit:
                continue
            order.append(i)
            roles[i] = []
        roles[i].append(_best_role(name, direction))
    return [_pick(study, front[i], roles[i]) for i in order]


def _pick(study: optuna.Study, trial: FrozenTrial, roles: list[str]) -> Pick:
    point = TrialRecord.of(trial).point or dict(trial.params)
    first = dict(TrialRecord.of(trial).metrics or {})
    confirmation = confirmation_for(study, trial.number)
    metrics = dict(TrialRecord.of(confirmation).metrics or {}) if confirmation is not None else first
    return Pick(trial, roles, short_label(point), confirmation, metrics, first)


def study_location(study: optuna.Study) -> str:
    """``--run-dir DIR`` for a run directory's ``study.db``, else ``--storage URL`` (password hidden),
    plus ``--study-name`` when the storage holds several studies. Empty when unknown."""
    from lepton_tune._redact import redact_url

    storage: Any = study._storage
    backend = getattr(storage, "_backend", storage)
    url = getattr(backend, "url", None)
    if url is None:
        return ""
    where = f"--storage '{redact_url(str(url))}'"
    if str(url).startswith("sqlite:///") and str(url).endswith("/study.db"):
        where = f"--run-dir {os.path.dirname(str(url)[len('sqlite:///') :]) or '.'}"
    try:
        several = len(backend.get_all_studies()) > 1
    except Exception:  # noqa: BLE001 - only decides whether to name the study
        several = True
    return f"{where} --study-name {study.study_name}" if several else where


def export_command(trial_number: int, location: str, out: str = "bundle/") -> str:
    """``lepton-tune export --run-dir runs --trial 5 --out bundle/``."""
    where = f" {location}" if location else ""
    return f"lepton-tune export{where} --trial {trial_number} --out {out}"
