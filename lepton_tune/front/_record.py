"""``TrialRecord``: the one typed view of what a lepton-tune trial stores (docs/trial-record.md).

Optuna keeps a trial's record as JSON user attributes; every package that reads or writes them
(tuning writes, the front, tracking, report, bundle and the CLI read) goes through this dataclass,
so a key is spelled once and a missing key has one default. ``to_attrs`` writes only what is set,
so a record read from an older study and written back is unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Literal, cast, get_args

from optuna.trial import FrozenTrial, Trial

__all__ = ["STATUSES", "Status", "TrialRecord"]

Status = Literal["ok", "infeasible", "failed", "noisy"]
#: ``lepton_status`` values: measured and within budgets / not run or budgets missed / an error /
#: measured while the host was busy (kept, never on the front).
STATUSES: tuple[Status, ...] = get_args(Status)


@dataclass(frozen=True)
class TrialRecord:
    """One trial's record. Field names are the user-attribute keys (``status`` is ``lepton_status``).

    Attributes:
        status: see :data:`STATUSES`; ``None`` while the trial runs.
        reason: why a trial is infeasible, failed or noisy ("" when ok).
        point: the full point evaluated (backbone, precision, engine fields, ``train.*``).
        metrics: everything measured (DESIGN's definitions), with ``speedup``/``memory_ratio`` against
            the in-process baseline of the same backbone.
        baseline: the user's own in-process call of a backbone, the reference of the ratios.
        confirms: for a confirmation (a re-measure in a fresh process), the trial it confirms.
        first_metrics: for a confirmation, the confirmed trial's own measurement.
        duplicate_of: the trial whose record this replays (the same point, never measured twice).
        noisy: the host was busy through every re-measured window (``noise`` says how busy).
        fidelity: None or ``"full"`` (the study's protocol), or ``"short"``: measured with the short window
            only and stopped there because even its optimistic values could not enter the front
            (a positive ``fidelity_short`` constraint; never on the front, a pick or a duplicate's source).
        remeasures: for a full re-measure of a short-fidelity trial, that trial's number.
    """

    status: Status | None = None
    reason: str = ""
    point: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    baseline: bool = False
    baseline_kind: str | None = None
    baseline_form: str | None = None
    confirms: int | None = None
    confirmed_by: str | None = None
    first_metrics: dict[str, Any] = field(default_factory=dict)
    duplicate_of: int | None = None
    noisy: bool = False
    fidelity: str | None = None
    remeasures: int | None = None
    noise: dict[str, Any] = field(default_factory=dict)
    spread: dict[str, Any] = field(default_factory=dict)
    stage_seconds: dict[str, float] = field(default_factory=dict)
    windows: list[dict[str, Any]] = field(default_factory=list)
    model: dict[str, Any] = field(default_factory=dict)
    host_id: str | None = None
    protocol: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # keys this version does not know (kept, not lost)

    @classmethod
    def from_attrs(cls, attrs: dict[str, Any]) -> TrialRecord:
        """Read a trial's user attributes; unknown keys go to ``extra``, ``None`` values to defaults."""
        known = {f.name for f in fields(cls)} - {"status", "extra"}
        values: dict[str, Any] = {k: v for k, v in attrs.items() if k in known and v is not None}
        status = attrs.get("lepton_status")
        extra = {k: v for k, v in attrs.items() if k not in known and k != "lepton_status"}
        return cls(status=cast("Status | None", status if status in STATUSES else None), extra=extra, **values)

    @classmethod
    def of(cls, trial: FrozenTrial | Trial) -> TrialRecord:
        return cls.from_attrs(trial.user_attrs)

    def to_attrs(self) -> dict[str, Any]:
        """The user attributes to store: None and empty fields are not written; ``extra`` as is."""
        attrs: dict[str, Any] = dict(self.extra)
        for f in fields(self):
            if f.name == "extra":
                continue
            value = getattr(self, f.name)
            if value is None or value == ("" if f.name == "reason" else None) or value in ({}, []):
                continue
            attrs["lepton_status" if f.name == "status" else f.name] = value
        if self.status is not None:
            attrs["reason"] = self.reason
        return attrs

    @property
    def is_confirmation(self) -> bool:
        return self.confirms is not None

    @property
    def backbone(self) -> str | None:
        value = self.point.get("backbone")
        return None if value is None else str(value)

    def metric(self, name: str) -> float | None:
        value = self.metrics.get(name)
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None
