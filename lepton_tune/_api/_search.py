"""``lepton_tune.search``: what ``lepton-tune search`` does, as one Python call.

Baselines, trials, MLflow tracking, progress, the confirmation of the recommended picks and the
HTML report all happen here; the CLI only parses its flags into these arguments and prints the
result (a table, or JSON).
"""

from __future__ import annotations

import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import optuna

from lepton_tune._api._result import SearchResult
from lepton_tune.config import DEFAULT_RUN_DIR, DEFAULT_STUDY, StudySpec, load_study
from lepton_tune.front import TrialRecord, recommended_picks
from lepton_tune.tuning import (
    SearchOptions,
    confirm_trial,
    confirmed_here,
    open_study,
    redact_url,
    run_search,
)

__all__ = ["DEFAULT_RUN_DIR", "DEFAULT_STUDY", "location_options", "search"]


def search(
    study: str | os.PathLike[str] | StudySpec = DEFAULT_STUDY,
    *,
    n_trials: int | None = None,
    timeout: float | None = None,
    storage: str | None = None,
    run_dir: str | os.PathLike[str] | None = None,
    study_name: str | None = None,
    sampler: str | None = None,
    seed: int | None = None,
    n_jobs: int = 1,
    tracking: bool = True,
    tracking_uri: str | None = None,
    progress: bool | Any = True,
    report: bool = True,
    confirm: bool = True,
    allow_foreign_host: bool = False,
    summary: bool = True,
    console: Any = None,
) -> SearchResult:
    """Run (or resume) a study on this host and return its result.

    Args:
        study: a study YAML path (default ``studies/quickstart.yaml``) or a loaded ``StudySpec``.
        n_trials: total trials the study should reach (default: the file's ``n_trials``).
        timeout: stop starting new trials after this many seconds.
        storage: an Optuna storage URL for scale-out (default: ``<run_dir>/study.db``).
        run_dir: where study.db, mlflow.db and reports go (default ``./lepton-runs``).
        tracking: log every trial to MLflow (``tracking_uri``: the ``--tracking-uri`` flag; then
            ``$MLFLOW_TRACKING_URI``, the study's ``tracking.uri``, the run dir's mlflow.db).
        progress: a live bar on a terminal, one line per trial elsewhere (on stderr); False for
            silence. A ``ProgressCallback`` is used as given.
        summary: print the front table and the recommended picks at the end (unless ``progress``
            is False).
        report: write ``report-<study>.html`` into the run dir at the end.
        confirm: re-measure each recommended pick in a fresh process (its first numbers are lucky
            on average); ``export`` confirms a point anyway.

    Raises:
        ConfigError: the study file breaks a rule (nothing is written).
        HostMismatchError: the stored study was measured on another host.
        KeyboardInterrupt: after the running trial is recorded as failed and the report written.

    Example:
        >>> import lepton_tune as lt
        >>> # result = lt.search("studies/quickstart.yaml", n_trials=4)
        >>> # result.pareto[0].label, result.pareto[0].metrics["throughput"]
    """
    spec = study if isinstance(study, StudySpec) else load_study(Path(study))  # bad input: nothing written
    where = Path(run_dir) if run_dir is not None else DEFAULT_RUN_DIR
    options = SearchOptions(
        run_dir=where,
        storage=storage,
        study_name=study_name,
        n_trials=n_trials,
        timeout=timeout,
        sampler=sampler,
        seed=seed,
        n_jobs=n_jobs,
        allow_foreign_host=allow_foreign_host,
    )
    opened, url, fingerprint = open_study(spec, options)
    console = console if console is not None else _stderr_console()
    tracker = _tracker(spec, where, opened.study_name, tracking_uri) if tracking else None
    shown = _progress_callback(progress, console, options.n_trials or spec.n_trials)
    options.progress = shown.training
    options.callbacks = [shown] + ([tracker] if tracker else [])
    location = location_options(storage, study_name, opened.study_name, where)
    if tracker:
        tracker.start(opened)
    started, status, report_path = time.perf_counter(), "FINISHED", None
    try:
        with shown:
            shown.start_at(opened)
            run_search(spec, options, study=opened, fingerprint=fingerprint)
            if confirm:
                confirm_picks(opened, None if shown.silent else console, options.callbacks)
    except KeyboardInterrupt:
        status = "KILLED"
        if tracker:
            running = [t for t in opened.get_trials(deepcopy=False) if t.state.name == "FAIL"]
            if running:
                tracker.log_interrupted(opened, running[-1])
        raise
    finally:
        report_path = write_study_report(opened, where, location) if report else None
        if tracker:
            tracker.finish(opened, report_path=report_path, status=status)
    result = SearchResult(
        opened,
        url,
        where,
        location=location,
        report_path=report_path,
        seconds=time.perf_counter() - started,
        storage_given=storage is not None,
    )
    if summary and not shown.silent:
        result.print(console)
    return result


def location_options(storage: str | None, study_name: str | None, name: str, run_dir: Path) -> str:
    """How later commands name this study: the options the user gave (password hidden)."""
    location = f"--storage '{redact_url(storage)}'" if storage else f"--run-dir {run_dir}"
    return f"{location} --study-name {name}" if study_name else location


def _stderr_console() -> Any:
    from rich.console import Console

    console = Console(stderr=True)
    return console if console.is_terminal else Console(stderr=True, width=220)  # logs: no 80-column squeeze


def _tracker(spec: StudySpec, run_dir: Path, study_name: str, flag: str | None) -> Any:
    """The MLflow callback, or None when tracking is off or MLflow cannot be used (the study goes on)."""
    if not spec.tracking.enabled:
        return None
    try:
        from lepton_tune.tracking import MLflowTracker, ensure_tracking_store, resolve_tracking_uri
    except ImportError as exc:
        warnings.warn(f"MLflow tracking unavailable ({exc}); the study goes on without it", stacklevel=3)
        return None
    uri = resolve_tracking_uri(flag, run_dir, spec.tracking.uri)
    try:
        if uri.startswith("sqlite:"):
            ensure_tracking_store(uri, study_name, str((run_dir / "mlartifacts").resolve()))
        return MLflowTracker(uri, study_name, run_dir=run_dir, redact=redact_url)
    except Exception as exc:  # noqa: BLE001 - tracking never stops the study
        warnings.warn(f"MLflow tracking disabled: {redact_url(str(exc))}", stacklevel=3)
        return None


def _progress_callback(progress: bool | Any, console: Any, total: int | None) -> Any:
    """``progress`` as a callback: given, silent (False), or the bar on a terminal / lines elsewhere."""
    from lepton_tune._api._progress import ProgressCallback

    if progress is not True and progress is not False:
        if getattr(progress, "total", 0) is None and hasattr(progress, "set_total"):
            progress.set_total(total)
        return progress
    logged = progress and not _is_terminal(sys.stderr)
    return ProgressCallback(
        console, total, bar=bool(progress) and console.is_terminal, lines=sys.stderr if logged else None
    )


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def confirm_picks(study: optuna.Study, console: Any, callbacks: list[Any]) -> None:
    """Re-measure each recommended pick not yet confirmed, in a fresh process (the front's points are
    lucky on average); the report and ``show`` then show the confirmed numbers.

    Each confirmation is a trial of its own: ``callbacks`` (the progress line, MLflow) see it like
    any finished trial. A pick that cannot be confirmed here (another host, a busy host, a failure)
    stays "not yet confirmed" with a one-line warning; the study is never lost over it.
    """
    for pick in recommended_picks(study):
        if pick.confirmed:
            continue
        if console is not None:
            console.print(
                f"confirming pick trial {pick.trial.number} ({pick.label}, {', '.join(pick.roles)}): "
                "measuring it again in a fresh process ...",
                markup=False,
                highlight=False,
            )
        try:
            confirmed = confirm_trial(study, pick.trial)
        except Exception as exc:  # noqa: BLE001 - a confirmation never loses the study
            first = str(exc).splitlines()[0] if str(exc) else repr(exc)
            warnings.warn(
                f"could not confirm trial {pick.trial.number}: {first}; it is shown as not yet confirmed "
                "(export confirms it)",
                stacklevel=2,
            )
            continue
        for callback in callbacks if confirmed_here(confirmed) else []:  # another worker logged its own
            callback(study, confirmed)
        if TrialRecord.of(confirmed).noisy:
            warnings.warn(
                f"trial {pick.trial.number}: the host was busy while confirming it; it is shown as not yet "
                "confirmed (export confirms it)",
                stacklevel=2,
            )


def write_study_report(study: optuna.Study, run_dir: Path, location: str, path: Path | None = None) -> Path | None:
    """The HTML report (``report-<study>.html`` in the run dir); a failure only warns."""
    try:
        from lepton_tune.report import write_report
    except ImportError:
        return None
    try:
        return write_report(study, path or run_dir / f"report-{study.study_name}.html", location=location)
    except Exception as exc:  # noqa: BLE001 - a report failure never loses the study
        warnings.warn(f"could not write the HTML report: {exc}", stacklevel=2)
        return None
