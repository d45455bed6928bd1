"""`lepton-tune predict`: classify image files through a bundle's engine."""

from __future__ import annotations

import argparse
from pathlib import Path

from lepton_tune._cli._common import print_json

__all__ = ["add_parser", "run"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("predict", help="classify image files (PNG, JPEG) through a bundle",
                       description="Classify image files, or directories of them (recursively, sorted), with the "
                                   "bundle's engine and the same preprocessing as the study's dataset.")
    p.add_argument("bundle", type=Path, metavar="DIR", help="bundle directory (from 'lepton-tune export')")
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files or directories")
    p.add_argument("--trust-code", action="store_true",
                   help="allow importing the user-model factory (model_spec.python) the bundle names; "
                        "refused by default because it runs that code")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"input", "label", "probability"} on stdout')
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    import numpy as np

    from lepton_tune.bundle import open_bundle
    from lepton_tune.data import expand_image_paths, load_image_files

    bundle = open_bundle(args.bundle, trust_code=args.trust_code or None)
    paths = expand_image_paths(args.inputs)
    images = load_image_files(paths, bundle.preprocessing).numpy()
    rows = []
    if len(images):
        with bundle.engine() as engine:
            logits = engine.predict(np.ascontiguousarray(images, dtype=np.float32))
        shifted = logits - logits.max(axis=1, keepdims=True)
        probs = np.exp(shifted) / np.exp(shifted).sum(axis=1, keepdims=True)
        classes = bundle.classes
        for path, p in zip(paths, probs):
            best = int(p.argmax())
            rows.append({"input": str(path), "label": classes[best] if best < len(classes) else str(best),
                         "probability": float(p[best])})
    if args.json:
        print_json(rows)
    else:
        for row in rows:
            print(f"{row['input']}\t{row['label']}\t{row['probability']:.3f}")
    return 0
