"""`lepton-tune export`: choose a front point and write it as a production bundle."""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_tune._cli._common import DEFAULT_RUN_DIR, add_location_options, err_console, print_json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "export",
        help="write a production bundle of a chosen front point",
        description="Choose a trial (--trial N, or the front points meeting every --require, best on --prefer) "
        "and write it as a bundle: lepton.yaml, weights with checksums, a model card, and an MLflow "
        "pyfunc MLmodel. Example: lepton-tune export --require 'accuracy>=0.95' --prefer latency_p95_ms --out bundle/",
    )
    add_location_options(p)
    choose = p.add_mutually_exclusive_group(required=True)
    choose.add_argument("--trial", type=int, default=None, metavar="N", help="export trial N (it must be COMPLETE)")
    choose.add_argument(
        "--require",
        action="append",
        default=None,
        metavar="EXPR",
        help="hard limit, e.g. 'accuracy>=0.97', 'latency_p95_ms<=20' (repeatable)",
    )
    p.add_argument(
        "--prefer",
        default=None,
        metavar="OBJECTIVE|knee",
        help="among the points meeting the limits: best on this objective, or 'knee' (default)",
    )
    p.add_argument("--out", type=Path, required=True, help="bundle directory to write (must not exist or be empty)")
    p.add_argument(
        "--force",
        action="store_true",
        help="replace --out if it is a lepton-tune bundle (never another directory, a file, '.', ~ or the run dir)",
    )
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow importing the user-model factory (model.python) that the study database names",
    )
    p.add_argument(
        "--register", default=None, metavar="NAME", help="also register the bundle in the MLflow Model Registry"
    )
    p.add_argument("--alias", default=None, help="alias of the registered version (with --register), e.g. 'production'")
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow tracking URI for --register (default: $MLFLOW_TRACKING_URI, then the study's "
        "tracking.uri, then the run directory's mlflow.db)",
    )
    p.add_argument(
        "--no-confirm",
        action="store_true",
        help="export the search's own measurement instead of re-measuring the point first (see README)",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lepton_tune._api import check_export_options, export_point
    from lepton_tune._cli.show import open_existing
    from lepton_tune.bundle import check_out_dir, storage_dirs
    from lepton_tune.tuning import resolve_storage_url

    check_export_options(register=args.register, alias=args.alias, prefer=args.prefer, trial=args.trial)
    run_dir = args.run_dir or DEFAULT_RUN_DIR
    # a bad --out is refused before the study is even opened
    check_out_dir(
        args.out, overwrite=args.force, protect=[run_dir, *storage_dirs(resolve_storage_url(args.storage, run_dir))]
    )
    study, url = open_existing(args)
    result = export_point(
        study,
        url,
        run_dir,
        args.out,
        require=args.require,
        prefer=args.prefer,
        trial=args.trial,
        confirm=not args.no_confirm,
        force=args.force,
        trust_code=args.trust_code or None,
        register=args.register,
        alias=args.alias,
        tracking_uri=args.tracking_uri,
        console=err_console(),
    )
    if args.json:
        print_json(result.as_dict())
    return 0
