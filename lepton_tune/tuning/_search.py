"""``run_search``: open or resume the study, check the host, run baselines, then optimise."""

from __future__ import annotations

import os
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from lepton_tune import __version__
from lepton_tune._redact import redact_data
from lepton_tune.config import DEFAULT_RUN_DIR, StudySpec, host_facts
from lepton_tune.exceptions import ConfigError, HostMismatchError, StorageError
from lepton_tune.front import TrialRecord
from lepton_tune.measure import FINGERPRINT_KEYS, host_fingerprint, host_id, warm_trials
from lepton_tune.tuning._baseline import run_baselines
from lepton_tune.tuning._fidelity import remeasure_admitted
from lepton_tune.tuning._objective import Objective, evaluate_point, judge_record
from lepton_tune.tuning._prepare import ModelPreparer
from lepton_tune.tuning._samplers import make_sampler
from lepton_tune.tuning._storage import (
    create_or_load_study,
    redact_url,
    resolve_storage_url,
    storage_failure,
    wait_for_storage,
)
from lepton_tune.tuning._summary import baseline_ratios

__all__ = ["SearchOptions", "finished_count", "open_study", "run_search"]

_MAX_OUTAGES_WITHOUT_PROGRESS = 3

Callback = Callable[[optuna.Study, optuna.trial.FrozenTrial], None]


@dataclass
class SearchOptions:
    """What the CLI (or a user's script) may override on top of the study file."""

    run_dir: Path = DEFAULT_RUN_DIR
    storage: str | None = None
    study_name: str | None = None
    n_trials: int | None = None
    timeout: float | None = None
    sampler: str | None = None
    seed: int | None = None
    n_jobs: int = 1
    allow_foreign_host: bool = False
    callbacks: list[Callback] = field(default_factory=list)
    progress: Callable[[dict[str, Any]], None] | None = None


def finished_count(study: optuna.Study) -> int:
    """Finished trials that count toward ``n_trials`` (a confirmation re-measures a point: it does not)."""
    return sum(
        TrialRecord.of(t).confirms is None
        for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED))
    )


def _check_host(study: optuna.Study, fingerprint: dict[str, Any], allow: bool) -> None:
    recorded = study.user_attrs.get("host")
    if not recorded or host_id(recorded) == host_id(fingerprint):
        return
    diff = ", ".join(
        f"{k}: {recorded.get(k)!r} -> {fingerprint.get(k)!r}"
        for k in FINGERPRINT_KEYS
        if recorded.get(k) != fingerprint.get(k)
    )
    if allow:
        warnings.warn(
            f"study {study.study_name!r} was measured on another host ({diff}); adding trials anyway "
            "(--allow-foreign-host)",
            stacklevel=2,
        )
        return
    raise HostMismatchError(
        f"study {study.study_name!r} was measured on a host with a different fingerprint ({diff}); its numbers would "
        "not compare. Use another --study-name, or pass --allow-foreign-host to add trials anyway."
    )


def _worker_seed(url: str, cli_seed: int | None, file_seed: int | None) -> int | None:
    """The sampler seed of this worker.

    On the embedded SQLite storage (one worker) the seed is used as given, so a study is
    reproducible. On a shared storage (a server, or a journal file several local workers write)
    every worker would otherwise draw the same points; there the file's seed is mixed with fresh
    randomness per worker. An explicit ``--seed`` is always used as given (give each worker its own).
    """
    if cli_seed is not None or file_seed is None or url.startswith("sqlite:"):
        return cli_seed if cli_seed is not None else file_seed
    return (file_seed * 1_000_003 + int.from_bytes(os.urandom(4), "little")) % 2**32


def open_study(spec: StudySpec, options: SearchOptions) -> tuple[optuna.Study, str, dict[str, Any]]:
    """Create or resume the study; record objectives, budgets and the host; refuse a foreign host."""
    url = resolve_storage_url(options.storage or spec.storage.url, options.run_dir)
    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    name = options.study_name or spec.name
    host = host_facts()
    sampler = make_sampler(
        spec.sampler, spec.space, host, seed=_worker_seed(url, options.seed, spec.sampler.seed), name=options.sampler
    )
    study = create_or_load_study(url, name, spec.directions, spec=spec.storage, sampler=sampler)
    recorded = study.user_attrs.get("objectives")
    if recorded and list(recorded) != list(spec.objectives):
        raise ConfigError(
            f"{spec.source}: objectives: study {name!r} in this storage optimises {recorded}, got {spec.objectives}. "
            "Use another --study-name (or name) for different objectives."
        )
    fingerprint = host_fingerprint()
    _check_host(study, fingerprint, options.allow_foreign_host or spec.allow_foreign_host)
    if not recorded:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            study.set_metric_names(list(spec.objectives))
        for key, value in {
            "objectives": list(spec.objectives),
            "directions": spec.directions,
            "budgets": dict(spec.budgets),
            "host": fingerprint,
            "host_id": host_id(fingerprint),
            "spec": redact_data(spec.model_dump(mode="json")),  # credentials come from the URL/env at run time
            "spec_source": spec.source,
            "lepton_version": __version__,
        }.items():
            study.set_user_attr(key, value)
    return study, url, fingerprint


def _finished_elsewhere(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, optuna.exceptions.UpdateFinishedTrialError) or (
            isinstance(seen, (RuntimeError, ValueError)) and "Cannot tell a" in str(seen)
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def run_search(
    spec: StudySpec,
    options: SearchOptions,
    *,
    study: optuna.Study | None = None,
    fingerprint: dict[str, Any] | None = None,
) -> optuna.Study:
    """Run (or resume) the study until ``n_trials`` trials in total have finished or time runs out.

    If the storage is lost mid-study (a database restart), the worker warns, waits for it to answer
    again and goes on; it raises :class:`StorageError` if it stays away (see ``wait_for_storage``).

    Example:
        >>> # study = run_search(load_study("studies/quickstart.yaml"), SearchOptions(n_trials=4))
    """
    if study is None or fingerprint is None:
        study, _, fingerprint = open_study(spec, options)
    host = host_facts()
    hid = host_id(fingerprint)
    preparer = ModelPreparer(spec, progress=options.progress)
    if spec.model is not None:  # a model that does not fit the images is bad input (exit 2), before any trial
        preparer.check_model()
        if spec.dataset.eval_only:
            study.set_user_attr("eval_images", preparer.eval_images())
    # protocol.warm: every trial's process (baselines too) is forked from one zygote for this call
    with warm_trials(spec.protocol.warm):
        study = _optimize(study, spec, options, host, hid, preparer)
        if spec.protocol.short_fraction is not None:
            _remeasure_short(study, spec, host, hid, preparer)
        return study


def _remeasure_short(study: optuna.Study, spec: StudySpec, host: Any, hid: str, preparer: ModelPreparer) -> list[int]:
    """Short-window trials that the final front would admit are measured in full (tuning/_fidelity.py)."""

    def finish(point: dict[str, Any], record: dict[str, Any]) -> tuple[list[float], dict[str, float], dict[str, Any]]:
        record["metrics"].update(baseline_ratios(study, point.get("backbone"), record["metrics"]))
        violations, status, reason = judge_record(spec, record)
        attrs = {**record, "lepton_status": status, "reason": reason, "noisy": status == "noisy", "host_id": hid}
        return [float(record["metrics"][o]) for o in spec.objectives], violations, attrs

    return remeasure_admitted(study, spec, lambda point: evaluate_point(point, spec, host, preparer), finish)


def _optimize(
    study: optuna.Study, spec: StudySpec, options: SearchOptions, host: Any, hid: str, preparer: ModelPreparer
) -> optuna.Study:
    target = options.n_trials or spec.n_trials
    if spec.baseline:
        run_baselines(study, spec, host, hid, preparer, callbacks=options.callbacks)
    callbacks: list[Callback] = list(options.callbacks)
    if target is not None:
        callbacks.append(optuna.study.MaxTrialsCallback(target, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    objective = Objective(spec, host, hid, preparer)
    timeout = options.timeout if options.timeout is not None else spec.timeout
    url = resolve_storage_url(options.storage or spec.storage.url, options.run_dir)
    started, done, outages, progress_at_outage = time.monotonic(), -2, 0, -1
    while True:
        try:
            done = finished_count(study)
            remaining = None if target is None else max(0, target - done)
            left = None if timeout is None else timeout - (time.monotonic() - started)
            if remaining == 0 or (left is not None and left <= 0):
                return study
            study.optimize(
                objective,
                n_trials=remaining,
                timeout=left,
                n_jobs=options.n_jobs,
                catch=(Exception,),
                callbacks=callbacks,
                gc_after_trial=False,
            )
            return study
        except Exception as exc:
            if _finished_elsewhere(exc):
                # This worker's heartbeat was late (e.g. during a storage outage) and another worker's
                # stale-trial check already failed and re-queued the trial: drop this result, go on.
                outages = outages + 1 if progress_at_outage == done else 1
                progress_at_outage = done
                if outages > _MAX_OUTAGES_WITHOUT_PROGRESS:
                    raise
                warnings.warn(
                    "a trial of this worker had already been failed and re-queued by the heartbeat check "
                    "(its heartbeat was late); its result is dropped and the retry measures it again",
                    stacklevel=2,
                )
                continue
            failure = storage_failure(exc)
            if failure is None:
                raise
            # the same error again and again with no trial finished in between is not an outage
            outages = outages + 1 if progress_at_outage == done else 1
            progress_at_outage = done
            if outages > _MAX_OUTAGES_WITHOUT_PROGRESS:
                raise StorageError(
                    f"the Optuna storage {redact_url(url)} keeps failing: "
                    f"{redact_url(str(failure)).strip().splitlines()[0]}. Completed trials are safe; "
                    "check the database server's log, then run the same command again."
                ) from None
            wait_for_storage(url, failure)
