"""`lepton-tune report`: write one self-contained HTML report of a study."""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_tune._cli._common import DEFAULT_RUN_DIR, add_location_options, err_console

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "report",
        help="write the HTML report of a study (opens offline)",
        description="Write one self-contained HTML file that opens offline: a plain summary and the "
        "recommended picks (with their export commands) first, then the front table, "
        "Pareto projections and 3-D view, front quality over trials, parameter "
        "importances and parallel coordinates.",
    )
    add_location_options(p)
    p.add_argument(
        "-o",
        "--output",
        type=Path,
        default=None,
        help="HTML file to write (default: <run dir>/report-<study>.html, or ./report-<study>.html with --storage)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lepton_tune.report import write_report
    from lepton_tune.tuning import load_existing_study, resolve_storage_url

    run_dir = args.run_dir or DEFAULT_RUN_DIR
    url = resolve_storage_url(args.storage, run_dir)
    study = load_existing_study(url, args.study_name)
    default_dir = Path(".") if args.storage else run_dir
    from lepton_tune._cli.show import location_of

    path = write_report(
        study, args.output or default_dir / f"report-{study.study_name}.html", location=location_of(args, study)
    )
    err_console().print(f"Report of study {study.study_name!r}: {path}")
    print(path)
    return 0
