"""`lepton-tune init --model ... --data DIR`: only write the commented study file for your model and images."""

from __future__ import annotations

import argparse
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    from lepton_tune._cli._from_model import add_model_arguments

    p = sub.add_parser(
        "init",
        help="write a study file for your own model and images (no search)",
        description="Write the commented study that 'lepton-tune search --model ... --data DIR' would run, "
        "so you can edit it first; then run 'lepton-tune search FILE'.",
    )
    p.add_argument("--out", type=Path, default=None, help="where to write it (default: RUN_DIR/<model name>.yaml)")
    p.add_argument(
        "--run-dir", type=Path, default=None, help="run directory for the default --out (default: ./lepton-runs)"
    )
    p.add_argument("--n-trials", type=int, default=None, help="n_trials in the written study (default 20)")
    add_model_arguments(p, required=True)
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from lepton_tune._cli._from_model import announce_study, write_model_study

    announce_study(write_model_study(args, args.out))
    return 0
