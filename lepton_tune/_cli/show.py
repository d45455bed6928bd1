"""`lepton-tune show`: print the Pareto front of an existing study."""

from __future__ import annotations

import argparse

from lepton_tune._cli._common import DEFAULT_RUN_DIR, add_location_options, err_console, print_json

__all__ = ["add_parser", "open_existing", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "show",
        help="print the Pareto front of an existing study",
        description="Print the feasible Pareto front of a study (table, or --json).",
    )
    add_location_options(p)
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def open_existing(args: argparse.Namespace):  # type: ignore[no-untyped-def]
    from lepton_tune.tuning import load_existing_study, resolve_storage_url

    url = resolve_storage_url(args.storage, args.run_dir or DEFAULT_RUN_DIR)
    return load_existing_study(url, args.study_name), url


def location_of(args: argparse.Namespace, study) -> str:  # type: ignore[no-untyped-def]
    """How an export command names this study: the options the user typed (password hidden)."""
    from lepton_tune._api import location_options

    return location_options(args.storage, args.study_name, study.study_name, args.run_dir or DEFAULT_RUN_DIR)


def run(args: argparse.Namespace) -> int:
    from lepton_tune._api import baseline_on_front, front_table, pick_lines
    from lepton_tune.front import recommended_picks, study_objectives
    from lepton_tune.tuning import study_counts, study_summary

    study, url = open_existing(args)
    if args.json:
        print_json(study_summary(study, storage=url))
        return 0
    console = err_console()
    from rich.console import Console

    out = Console() if Console().is_terminal else Console(width=220)
    picks = recommended_picks(study)
    out.print(front_table(study, picks))
    out.print("Recommended picks (the knee of the front, then the best on each objective):", highlight=False)
    for line in pick_lines(
        picks, study_objectives(study), location_of(args, study), baseline_front=baseline_on_front(study)
    ):
        out.print(line, markup=False, highlight=False)
    counts = study_counts(study)
    console.print(", ".join(f"{k} {v}" for k, v in counts.items()))
    return 0
