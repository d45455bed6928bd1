"""`lepton-tune search`: run (or resume) a study; print the Pareto front."""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path
from typing import Any

from lepton_tune._cli._common import DEFAULT_RUN_DIR, DEFAULT_STUDY, err_console, print_json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("search", help="run or resume a study (default: studies/quickstart.yaml)",
                       description="Search model and serving layout jointly; every trial runs for real on this host.")
    p.add_argument("study", nargs="?", type=Path, default=None, help=f"study YAML (default: {DEFAULT_STUDY})")
    p.add_argument("--n-trials", type=int, default=None, help="total trials the study should reach (default: the file's n_trials)")
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after SEC seconds")
    p.add_argument("--run-dir", type=Path, default=None, help=f"where study.db, mlflow.db and reports go (default: ./{DEFAULT_RUN_DIR})")
    p.add_argument("--storage", default=None, help="Optuna storage URL for scale-out (postgresql+psycopg2://..., sqlite:///..., PATH.journal)")
    p.add_argument("--study-name", default=None, help="study name in the storage (default: the file's name)")
    p.add_argument("--sampler", choices=["tpe", "nsga2", "random", "grid", "qmc"], default=None, help="override the file's sampler (default qmc, chosen by benchmarks/search.py)")
    p.add_argument("--seed", type=int, default=None, help="sampler seed")
    p.add_argument("--n-jobs", type=int, default=1, help="trials in parallel threads (measurements never overlap)")
    p.add_argument("--tracking-uri", default=None, help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the run dir's mlflow.db)")
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.add_argument("--no-confirm", action="store_true",
                   help="do not re-measure the recommended picks at the end (export confirms a point anyway)")
    p.add_argument("--allow-foreign-host", action="store_true", help="add trials to a study measured on another host")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress: neither the live bar (terminal) nor the per-trial lines (log)")
    from lepton_tune._cli._from_model import add_model_arguments

    add_model_arguments(p)
    p.set_defaults(handler=run)


def _tracker(args: argparse.Namespace, spec: Any, run_dir: Path, study_name: str) -> Any:
    if args.no_tracking or not spec.tracking.enabled:
        return None
    try:
        from lepton_tune.tracking import MLflowTracker, default_tracking_uri, ensure_tracking_store
    except ImportError as exc:  # tracking is optional for the study: warn, go on
        warnings.warn(f"MLflow tracking unavailable ({exc}); the study goes on without it", stacklevel=2)
        return None
    from lepton_tune.tuning import redact_url

    uri = args.tracking_uri or os.environ.get("MLFLOW_TRACKING_URI") or spec.tracking.uri or default_tracking_uri(run_dir)
    try:
        if uri.startswith("sqlite:"):
            ensure_tracking_store(uri, study_name, str((run_dir / "mlartifacts").resolve()))
        return MLflowTracker(uri, study_name, run_dir=run_dir, redact=redact_url)
    except Exception as exc:  # noqa: BLE001 - tracking never stops the study
        warnings.warn(f"MLflow tracking disabled: {redact_url(str(exc))}", stacklevel=2)
        return None


def run(args: argparse.Namespace) -> int:
    from lepton_tune.config import load_study
    from lepton_tune.exceptions import ConfigError

    if args.model is not None:  # the one-command form: write the study from the template, then search it
        from lepton_tune._cli._from_model import announce_study, write_model_study

        if args.study is not None:
            raise ConfigError(f"search: give a study file or --model, not both (got {args.study} and --model {args.model})")
        args.study = announce_study(write_model_study(args))
    spec = load_study(args.study or DEFAULT_STUDY)  # bad input exits 2 before anything is written
    import optuna

    if not args.debug:  # the progress line and the front table say it all; warnings still show
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = err_console()
    from lepton_tune._cli._display import baseline_on_front, front_table, next_steps, pick_lines
    from lepton_tune.front import recommended_picks, study_objectives
    from lepton_tune.tuning import (
        SearchOptions,
        finished_count,
        open_study,
        redact_url,
        run_search,
        study_summary,
    )

    run_dir = args.run_dir or DEFAULT_RUN_DIR
    options = SearchOptions(run_dir=run_dir, storage=args.storage, study_name=args.study_name, n_trials=args.n_trials,
                            timeout=args.timeout, sampler=args.sampler, seed=args.seed, n_jobs=args.n_jobs,
                            allow_foreign_host=args.allow_foreign_host)
    study, url, fingerprint = open_study(spec, options)
    tracker = _tracker(args, spec, run_dir, study.study_name)
    total = options.n_trials or spec.n_trials
    progress = _progress(args, console, total)
    options.progress = progress.training
    options.callbacks = [progress] + ([tracker] if tracker else [])
    if tracker:
        tracker.start(study)
    location = f"--storage '{redact_url(url)}'" if args.storage else f"--run-dir {run_dir}"
    if args.study_name:
        location += f" --study-name {study.study_name}"
    started, status = time.perf_counter(), "FINISHED"
    try:
        with progress:
            progress.start_at(study)
            run_search(spec, options, study=study, fingerprint=fingerprint)
            if not args.no_confirm:
                _confirm_picks(study, None if args.quiet else console, options.callbacks)
    except KeyboardInterrupt:
        status = "KILLED"
        if tracker:
            running = [t for t in study.get_trials(deepcopy=False) if t.state.name == "FAIL"]
            if running:
                tracker.log_interrupted(study, running[-1])
        raise
    finally:
        report = _write_report(args, study, run_dir, location)
        if tracker:
            tracker.finish(study, report_path=report, status=status)
    if args.json:
        print_json(study_summary(study, storage=url))
    else:
        picks = recommended_picks(study)
        console.print(front_table(study, picks))
        console.print("Recommended picks (the knee of the front, then the best on each objective):", highlight=False)
        for line in pick_lines(picks, study_objectives(study), location,
                               baseline_front=baseline_on_front(study)):
            console.print(line, markup=False, highlight=False)
        console.print(f"{finished_count(study)} trials in the study; this run took {time.perf_counter() - started:.0f} s.")
        if report:
            console.print(f"Report: {report}")
        console.print(next_steps(location, None if args.storage else str(run_dir)))
    return 0


def _progress(args: argparse.Namespace, console: Any, total: int | None) -> Any:
    """The live bar on a terminal; one line per trial (and a heartbeat) where output goes to a log.

    The lines go to stdout, or to stderr with ``--json`` (stdout then holds only the JSON);
    none where that stream is a terminal, which has the bar.
    """
    import sys

    from lepton_tune._cli._progress import ProgressCallback

    stream = sys.stderr if args.json else sys.stdout
    bar = not args.quiet and console.is_terminal
    logged = not args.quiet and not _is_terminal(stream)
    return ProgressCallback(console, total, bar=bar, lines=stream if logged else None)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def _confirm_picks(study: Any, console: Any, callbacks: list[Any]) -> None:
    """Re-measure each recommended pick not yet confirmed, in a fresh process (the front's points are
    lucky on average: WAVE2 decision 13); the report and ``show`` then show the confirmed numbers.

    Each confirmation is a trial of its own: ``callbacks`` (the progress line, MLflow) see it like
    any finished trial.

    A pick that cannot be confirmed here (another host, a busy host, a failure) stays "not yet
    confirmed" with a one-line warning; the study is never lost over it.
    """
    from lepton_tune.front import recommended_picks
    from lepton_tune.tuning import confirm_trial, confirmed_here

    for pick in recommended_picks(study):
        if pick.confirmed:
            continue
        if console is not None:
            console.print(f"confirming pick trial {pick.trial.number} ({pick.label}, {', '.join(pick.roles)}): "
                          "measuring it again in a fresh process ...", markup=False, highlight=False)
        try:
            confirmed = confirm_trial(study, pick.trial)
        except Exception as exc:  # noqa: BLE001 - a confirmation never loses the study
            warnings.warn(f"could not confirm trial {pick.trial.number}: {str(exc).splitlines()[0] if str(exc) else exc!r}; "
                          "it is shown as not yet confirmed (export confirms it)", stacklevel=2)
            continue
        for callback in callbacks if confirmed_here(confirmed) else []:  # another worker logged its own
            callback(study, confirmed)
        if confirmed.user_attrs.get("noisy"):
            warnings.warn(f"trial {pick.trial.number}: the host was busy while confirming it; it is shown as not yet "
                          "confirmed (export confirms it)", stacklevel=2)


def _write_report(args: argparse.Namespace, study: Any, run_dir: Path, location: str) -> Path | None:
    if args.no_report:
        return None
    try:
        from lepton_tune.report import write_report
    except ImportError:
        return None
    try:
        return write_report(study, run_dir / f"report-{study.study_name}.html", location=location)
    except Exception as exc:  # noqa: BLE001 - a report failure never loses the study
        warnings.warn(f"could not write the HTML report: {exc}", stacklevel=2)
        return None
