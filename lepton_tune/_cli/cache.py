"""`lepton-tune cache ls|clear`: list or empty the model cache (trained and converted weights)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lepton_tune._cli._common import print_json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "cache",
        help="list or clear the model cache",
        description="List or clear the model cache ($LEPTON_TUNE_CACHE, default ~/.cache/lepton-tune).",
    )
    p.add_argument(
        "--cache-dir", type=Path, default=None, help="cache root (default: $LEPTON_TUNE_CACHE or ~/.cache/lepton-tune)"
    )
    actions = p.add_subparsers(dest="cache_action", metavar="ACTION")
    actions.required = True
    ls = actions.add_parser("ls", help="list entries: backbone, recipe hash, precision, size, created")
    ls.add_argument("--json", action="store_true", help="print a JSON list on stdout")
    clear = actions.add_parser("clear", help="delete every entry (only in a cache directory lepton-tune created)")
    clear.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.set_defaults(handler=run)


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"  # pragma: no cover


def _ls(cache, as_json: bool) -> int:  # type: ignore[no-untyped-def]
    rows = [
        {
            "backbone": e.get("backbone"),
            "recipe_hash": e.get("recipe_hash"),
            "precision": e.get("precision"),
            "kind": e.get("kind"),
            "key": e.get("key"),
            "size": e.get("size"),
            "created": e.get("created"),
            "val_accuracy": e.get("val_accuracy"),
            "path": e.get("path"),
        }
        for e in cache.entries()
    ]
    if as_json:
        print_json(rows)
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"model cache: {cache.root}")
    for col in ("backbone", "recipe hash", "precision", "size", "created"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for r in rows:
        table.add_row(
            str(r["backbone"]), str(r["recipe_hash"]), str(r["precision"]), _size(r["size"] or 0), str(r["created"])
        )
    console = Console()
    console.print(table)
    console.print(f"{len(rows)} entries, {_size(sum(r['size'] or 0 for r in rows))}")
    return 0


def _clear(cache, yes: bool) -> int:  # type: ignore[no-untyped-def]
    from lepton_tune.exceptions import CacheError

    cache.check_owned()  # a directory lepton-tune did not create is refused before anything is asked
    count = len(cache.entries())
    if not yes:
        if not sys.stdin.isatty():
            raise CacheError(
                f"cache clear: would delete {count} entries under {cache.root}, and stdin is not a terminal to "
                "confirm. Pass --yes"
            )
        answer = input(f"Delete {count} entries ({_size(cache.size_bytes())}) under {cache.root}? [y/N] ")
        if answer.strip().lower() not in ("y", "yes"):
            print("nothing deleted", file=sys.stderr)
            return 1
    removed = cache.clear()
    print(f"removed {removed} entries from {cache.root}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from lepton_tune.models import ModelCache

    cache = ModelCache(args.cache_dir)
    if args.cache_action == "ls":
        return _ls(cache, args.json)
    return _clear(cache, args.yes)
