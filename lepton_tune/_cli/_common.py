"""Options shared by several subcommands and small helpers for terminal output."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lepton_tune.config import DEFAULT_RUN_DIR, DEFAULT_STUDY  # one definition, re-exported for the subcommands

__all__ = ["DEFAULT_RUN_DIR", "DEFAULT_STUDY", "add_location_options", "err_console", "not_implemented"]


def add_location_options(parser: argparse.ArgumentParser) -> None:
    """``--run-dir`` / ``--storage`` / ``--study-name``: where an existing study lives."""
    where = parser.add_mutually_exclusive_group()
    where.add_argument(
        "--run-dir", type=Path, default=None, help=f"run directory holding study.db (default: ./{DEFAULT_RUN_DIR})"
    )
    where.add_argument(
        "--storage",
        default=None,
        help="Optuna storage URL (sqlite:///..., postgresql+psycopg2://..., or a .journal file)",
    )
    parser.add_argument("--study-name", default=None, help="study to read (default: the only study in the storage)")


def err_console() -> Any:
    """A rich console on stderr (stdout stays clean for --json)."""
    from rich.console import Console

    console = Console(stderr=True)
    if not console.is_terminal:  # logs and CI: do not squeeze tables into 80 columns
        console = Console(stderr=True, width=220)
    return console


def not_implemented(name: str) -> int:
    from lepton_tune.exceptions import LeptonTuneError

    raise LeptonTuneError(f"'lepton-tune {name}' is not implemented yet")


def print_json(obj: object) -> None:
    import json

    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")
