"""`lepton-tune verify`: re-measure a bundle on this host under its recorded protocol."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lepton_tune._cli._common import err_console, print_json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "verify",
        help="re-measure a bundle here; exit 3 if it drifted, 4 if the host was busy",
        description="Check the bundle's files, start its engine, re-measure it under the recorded protocol and "
        "compare with the recorded values. Tolerances, in the worse direction only: latency p50/p95 "
        "+15%%, throughput -10%%, memory +10%%; accuracy equal within one test image. p99 and cost are "
        "reported, not judged. Exit 0 within, 3 outside (drifted), 4 host busy (other processes used more "
        "than the protocol's noise_threshold in every re-measured window: nothing judged).",
    )
    p.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory")
    p.add_argument(
        "--tolerance",
        action="append",
        default=None,
        metavar="[METRIC=]FRACTION",
        help="override a tolerance: '0.5' for every timing/memory metric, 'memory_mb=0.2', "
        "'accuracy=0.01' (absolute); repeatable",
    )
    p.add_argument(
        "--noise-threshold",
        type=float,
        default=None,
        metavar="CORES",
        help="CPU (in cores) other processes may use during a window before it is re-measured and, "
        "past the retry budget, the run is called busy (exit 4); default: the bundle's protocol",
    )
    p.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    p.set_defaults(handler=run)


def escape(text: str) -> str:
    from rich.markup import escape as rich_escape

    return rich_escape(text)


def run(args: argparse.Namespace) -> int:
    from lepton_tune._api import host_differences, verify
    from lepton_tune.bundle import parse_tolerances, read_manifest

    parse_tolerances(args.tolerance)  # bad input exits 2 before the bundle is even read
    console = err_console()
    differences = host_differences(read_manifest(args.bundle, verify=False).get("host", {}))
    if differences:
        console.print(
            "[yellow]warning:[/] this host differs from the one the bundle was measured on "
            f"({escape('; '.join(differences))}); expect different numbers",
            soft_wrap=True,
        )
    result = verify(args.bundle, tolerances=args.tolerance, noise_threshold=args.noise_threshold)
    if args.json:
        print_json(result.as_dict())
    if result.busy:
        console.print(f"[yellow]{escape(result.message)}[/]", soft_wrap=True)
    elif not args.json:
        console.print(_table(args.bundle, result.checks))
        console.print(
            "[green]within tolerance[/]"
            if result.ok
            else f"[red]outside tolerance:[/] {', '.join(c.name for c in result.outside)}"
        )
    return result.exit_code


def _table(bundle: Path, checks: list[Any]) -> Any:
    from rich.table import Table

    table = Table(title=f"verify {bundle}")
    for col in ("metric", "recorded", "measured", "change", "tolerance", "status"):
        table.add_column(col)
    for c in checks:
        change = f"{c.change:+.4f}" if c.name == "accuracy" else f"{c.change:+.1%}"
        tol = "-" if c.tolerance is None else (f"±{c.tolerance:.4f}" if c.name == "accuracy" else f"{c.tolerance:.0%}")
        style = {"ok": "green", "outside": "red"}.get(c.status, "dim")
        table.add_row(c.name, f"{c.recorded:.4g}", f"{c.measured:.4g}", change, tol, f"[{style}]{c.status}[/]")
    return table
