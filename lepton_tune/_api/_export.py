"""Export a chosen study point as a bundle: choose, confirm in a fresh process, write, register.

``lepton-tune export`` and ``SearchResult.export`` both call :func:`export_point`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial

from lepton_tune.bundle import (
    check_out_dir,
    export_bundle,
    manifest_digest,
    read_manifest,
    storage_dirs,
)
from lepton_tune.exceptions import BundleError, HostBusyError
from lepton_tune.front import TrialRecord
from lepton_tune.tuning import confirm_trial, confirmation_of, redact_url, select_trial

__all__ = ["ExportResult", "check_export_options", "export_point"]

_CONFIRM_SHOWN = ("latency_p50_ms", "latency_p95_ms", "throughput", "memory_mb", "accuracy")


@dataclass(frozen=True)
class ExportResult:
    """What ``export`` wrote: the bundle, the chosen trial, and the measurement the bundle records.

    ``confirmed_by`` is the confirmation trial whose numbers the bundle records (None with
    ``confirm=False``); ``first_metrics`` are the search's own numbers of the chosen trial.
    """

    bundle: Path
    study: str
    trial: int
    reason: str
    metrics: dict[str, Any]
    first_metrics: dict[str, Any]
    confirmed_by: int | None
    manifest_sha256: str
    registered: dict[str, Any] | None = None
    files: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out = {
            "bundle": str(self.bundle),
            "study": self.study,
            "trial": self.trial,
            "reason": self.reason,
            "metrics": self.metrics,
            "manifest_sha256": self.manifest_sha256,
            "confirmed_by": self.confirmed_by,
            "first_metrics": self.first_metrics,
        }
        if self.registered is not None:
            out["registered"] = self.registered
        return {**out, "files": self.files}


def export_point(
    study: optuna.Study,
    url: str,
    run_dir: Path,
    out: str | os.PathLike[str],
    *,
    require: list[str] | None = None,
    prefer: str | None = None,
    trial: int | None = None,
    confirm: bool = True,
    force: bool = False,
    trust_code: bool | None = None,
    register: str | None = None,
    alias: str | None = None,
    tracking_uri: str | None = None,
    console: Any = None,
) -> ExportResult:
    """Choose a point (``trial``, or the front points meeting every ``require``, best on ``prefer``),
    confirm it in a fresh process unless ``confirm=False``, write the bundle to ``out`` and, with
    ``register``, register it in the MLflow Model Registry.

    Raises:
        BundleError: ``out`` is not a safe place to write, or the options contradict each other.
        SelectionError: no front point meets the limits.
        HostBusyError: the host stayed busy while confirming (nothing is written).
    """
    check_export_options(register=register, alias=alias, prefer=prefer, trial=trial)
    out = Path(out)
    protect = [run_dir, *storage_dirs(url)]
    check_out_dir(out, overwrite=force, protect=protect)  # before anything slow
    say = _printer(console)
    selection = select_trial(study, requires=list(require or []), prefer=prefer, trial_number=trial)
    say(f"chose {selection.reason}")
    first = TrialRecord.of(selection.trial).metrics
    say("  " + ", ".join(f"{k}={v:.4g}" for k, v in first.items() if isinstance(v, (int, float))))
    chosen = _confirm(study, selection.trial, say) if confirm else selection.trial
    written = export_bundle(
        study,
        chosen,
        out,
        reason=selection.reason,
        overwrite=force,
        storage=redact_url(url),
        protect=protect,
        trust_code=trust_code,
    )
    digest = manifest_digest(written)
    say(f"wrote bundle {written} (lepton.yaml sha256 {digest}: pin it with load_bundle(..., digest=...))")
    registered = None
    if register:
        registered = _register(study, written, run_dir, register, alias, tracking_uri)
        say(
            f"registered {register} version {registered['version']} ({registered['uri']}) in "
            f"{redact_url(registered.pop('tracking_uri'))}"
        )
    return ExportResult(
        written,
        study.study_name,
        selection.trial.number,
        selection.reason,
        TrialRecord.of(chosen).metrics,
        first,
        None if chosen is selection.trial else chosen.number,
        digest,
        registered,
        read_manifest(written, verify=False)["files"],
    )


def check_export_options(*, register: str | None, alias: str | None, prefer: str | None, trial: int | None) -> None:
    """Options that contradict each other, refused before anything is opened."""
    if alias and not register:
        raise BundleError("--alias needs --register NAME (the registered model the alias points into)")
    if prefer and trial is not None:
        raise BundleError("--prefer applies to --require; with --trial N the trial is already chosen")


def _printer(console: Any) -> Any:
    if console is None:
        return lambda text: None
    return lambda text: console.print(text, markup=False, highlight=False)


def _confirm(study: optuna.Study, trial: FrozenTrial, say: Any) -> FrozenTrial:
    """Re-measure the chosen point in a fresh process (the front's points are lucky on average)."""
    earlier = confirmation_of(study, trial.number)
    if earlier is None:
        say(f"confirming trial {trial.number}: measuring it again in a fresh process with fresh windows ...")
    else:
        say(
            f"trial {trial.number} was already confirmed in a fresh process (trial {earlier.number}); "
            "using that measurement"
        )
    confirmed = earlier or confirm_trial(study, trial)
    if TrialRecord.of(confirmed).noisy:
        confirmed = confirm_trial(study, trial, reuse=False)  # once more: the host may have calmed down
    record = TrialRecord.of(confirmed)
    if record.noisy:
        raise HostBusyError(
            f"trial {trial.number}: the host was busy while confirming it ({record.reason}). Nothing "
            "was exported; re-run export on a quiet host, or pass --no-confirm to export the "
            "search's measurement"
        )
    first, now = TrialRecord.of(trial).metrics, record.metrics
    changes = ", ".join(f"{k} {first[k]:.4g} -> {now[k]:.4g}" for k in _CONFIRM_SHOWN if k in first and k in now)
    say(f"confirmed as trial {confirmed.number}: {changes} (the bundle records the confirmation)")
    return confirmed


def _register(
    study: optuna.Study, bundle: Path, run_dir: Path, name: str, alias: str | None, flag: str | None
) -> dict[str, Any]:
    """Register ``bundle`` in the Model Registry of the tracking URI every command resolves the same way."""
    from lepton_tune.bundle import register_bundle
    from lepton_tune.tracking import ensure_tracking_store, resolve_tracking_uri, study_tracking_uri

    uri = resolve_tracking_uri(flag, run_dir, study_tracking_uri(study.user_attrs))
    location = run_dir / "mlartifacts" if uri.startswith("sqlite:") else None  # a server keeps its own artifacts
    experiment = ensure_tracking_store(uri, study.study_name, location)
    version = register_bundle(bundle, name, tracking_uri=uri, experiment_id=experiment, alias=alias)
    where = f"models:/{name}@{alias}" if alias else f"models:/{name}/{version}"
    return {"name": name, "version": version, "alias": alias, "uri": where, "tracking_uri": uri}
