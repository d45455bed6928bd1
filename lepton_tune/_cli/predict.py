"""`lepton-tune predict`: classify image files through a bundle's engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_tune._cli._common import print_json
from lepton_tune.data import CHUNK_FILES

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "predict",
        help="classify image files (PNG, JPEG) through a bundle",
        description="Classify image files, or directories of them (recursively, sorted), with the "
        "bundle's engine and the same preprocessing as the study's dataset.",
    )
    p.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory (from 'lepton-tune export')")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or directories")
    p.add_argument(
        "--trust-code",
        action="store_true",
        help="allow importing the user-model factory (model_spec.python) the bundle names; "
        "refused by default because it runs that code",
    )
    p.add_argument(
        "--json", action="store_true", help='print a JSON list of {"input", "label", "probability"} on stdout'
    )
    p.set_defaults(handler=run)


def _progress(total: int):  # type: ignore[no-untyped-def]
    """A progress bar on stderr for long inputs on a terminal; a no-op otherwise."""
    import contextlib

    from lepton_tune._cli._common import err_console

    console = err_console()
    if total <= CHUNK_FILES or not console.is_terminal:
        return contextlib.nullcontext(None)
    from rich.progress import Progress

    return Progress(console=console, transient=True)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lepton_tune.bundle import labels_of, open_bundle
    from lepton_tune.data import expand_image_paths, iter_preprocessed

    bundle = open_bundle(args.bundle, trust_code=args.trust_code or None)
    paths = expand_image_paths(args.inputs)
    classes = bundle.classes
    rows = []
    if paths:
        with bundle.engine() as engine, _progress(len(paths)) as progress:
            task = progress.add_task("classifying", total=len(paths)) if progress is not None else None
            # CHUNK_FILES files at a time: a directory of any size is decoded and served in bounded memory
            for part, images in iter_preprocessed(paths, bundle.preprocessing):
                logits = engine.predict(np.ascontiguousarray(images.numpy(), dtype=np.float32))
                labels, probs = labels_of(logits, classes)  # the served model's answer too
                for path, label, prob in zip(part, labels, probs):
                    row = {"input": str(path), "label": label, "probability": float(prob)}
                    if args.json:
                        rows.append(row)
                    else:
                        print(f"{row['input']}\t{row['label']}\t{row['probability']:.3f}", flush=True)
                if progress is not None:
                    progress.advance(task, len(part))
    if args.json:
        print_json(rows)
    return 0
