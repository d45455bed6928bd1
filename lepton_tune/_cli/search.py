"""`lepton-tune search`: run (or resume) a study; print the Pareto front."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lepton_tune._cli._common import DEFAULT_RUN_DIR, DEFAULT_STUDY, err_console, print_json
from lepton_tune.config import SAMPLERS

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "search",
        help="run or resume a study (default: studies/quickstart.yaml)",
        description="Search model and serving layout jointly; every trial runs for real on this host.",
    )
    p.add_argument("study", nargs="?", type=Path, default=None, help=f"study YAML (default: {DEFAULT_STUDY})")
    p.add_argument(
        "--n-trials", type=int, default=None, help="total trials the study should reach (default: the file's n_trials)"
    )
    p.add_argument("--timeout", type=float, default=None, help="stop starting new trials after SEC seconds")
    p.add_argument(
        "--run-dir",
        type=Path,
        default=None,
        help=f"where study.db, mlflow.db and reports go (default: ./{DEFAULT_RUN_DIR})",
    )
    p.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL for scale-out (postgresql+psycopg2://..., sqlite:///..., PATH.journal)",
    )
    p.add_argument("--study-name", default=None, help="study name in the storage (default: the file's name)")
    p.add_argument(
        "--sampler",
        choices=SAMPLERS,
        default=None,
        help="override the file's sampler (default qmc, chosen by benchmarks/search.py)",
    )
    p.add_argument("--seed", type=int, default=None, help="sampler seed")
    p.add_argument("--n-jobs", type=int, default=1, help="trials in parallel threads (measurements never overlap)")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or the run dir's mlflow.db)",
    )
    p.add_argument("--no-tracking", action="store_true", help="do not log to MLflow")
    p.add_argument("--no-report", action="store_true", help="do not write the HTML report at the end")
    p.add_argument(
        "--no-confirm",
        action="store_true",
        help="do not re-measure the recommended picks at the end (export confirms a point anyway)",
    )
    p.add_argument("--allow-foreign-host", action="store_true", help="add trials to a study measured on another host")
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout (progress goes to stderr)")
    p.add_argument(
        "--quiet",
        action="store_true",
        help="no progress: neither the live bar (terminal) nor the per-trial lines (log)",
    )
    from lepton_tune._cli._from_model import add_model_arguments

    add_model_arguments(p)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lepton_tune.exceptions import ConfigError

    if args.model is not None:  # the one-command form: write the study from the template, then search it
        from lepton_tune._cli._from_model import announce_study, write_model_study

        if args.study is not None:
            raise ConfigError(
                f"search: give a study file or --model, not both (got {args.study} and --model {args.model})"
            )
        args.study = announce_study(write_model_study(args))
    import optuna

    from lepton_tune._api import search

    if not args.debug:  # the progress line and the front table say it all; warnings still show
        optuna.logging.set_verbosity(optuna.logging.WARNING)
    console = err_console()
    result = search(
        args.study or DEFAULT_STUDY,
        n_trials=args.n_trials,
        timeout=args.timeout,
        storage=args.storage,
        run_dir=args.run_dir or DEFAULT_RUN_DIR,
        study_name=args.study_name,
        sampler=args.sampler,
        seed=args.seed,
        n_jobs=args.n_jobs,
        tracking=not args.no_tracking,
        tracking_uri=args.tracking_uri,
        progress=_progress(args, console),
        report=not args.no_report,
        confirm=not args.no_confirm,
        allow_foreign_host=args.allow_foreign_host,
        summary=False,
        console=console,
    )
    if args.json:
        print_json(result.summary())
    else:
        result.print(console)
    return 0


def _progress(args: argparse.Namespace, console: Any) -> Any:
    """The live bar on a terminal; one line per trial (and a heartbeat) where output goes to a log.

    The lines go to stdout, or to stderr with ``--json`` (stdout then holds only the JSON);
    none where that stream is a terminal, which has the bar. The bar's total is set when the
    study is open (``n_trials`` may come from the file).
    """
    import sys

    from lepton_tune._api import ProgressCallback

    stream = sys.stderr if args.json else sys.stdout
    bar = not args.quiet and console.is_terminal
    logged = not args.quiet and not _is_terminal(stream)
    return ProgressCallback(console, args.n_trials, bar=bar, lines=stream if logged else None)


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False
