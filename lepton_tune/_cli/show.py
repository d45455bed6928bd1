"""`lepton-tune show`."""

from __future__ import annotations

import argparse

from lepton_tune._cli._common import not_implemented


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("show", help="(not implemented yet)")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    return not_implemented("show")
