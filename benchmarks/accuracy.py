"""Test accuracy of each quickstart backbone at each precision, beside scikit-learn's SVC.

Digits at the quickstart image size and split (studies/quickstart.yaml): every backbone of the
quickstart search space is trained with the quickstart recipe, converted to every precision this
host supports (the quickstart's precisions plus int8_dynamic), and scored on the held-out test
split. The baseline is ``SVC(gamma=0.001)`` on the raw 8x8 pixels (0..16), fitted on the same
training images and scored on the same test images. Training uses a fresh temporary model cache
unless ``--cache`` is given, so the training seconds are real.

Usage (from the repository root)::

    python benchmarks/accuracy.py            # full quickstart recipe (12 epochs, early stopping)
    python benchmarks/accuracy.py --quick    # 3 epochs, a smoke run
    python benchmarks/accuracy.py --json results.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def _svc(ds) -> float:  # type: ignore[no-untyped-def]
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    digits = load_digits()
    train, test = ds.split_indices["train"], ds.split_indices["test"]
    clf = SVC(gamma=0.001).fit(digits.data[train], digits.target[train])
    return float(clf.score(digits.data[test], digits.target[test]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", default=str(REPO / "studies" / "quickstart.yaml"))
    parser.add_argument("--quick", action="store_true", help="train 3 epochs instead of the study's recipe")
    parser.add_argument("--cache", action="store_true", help="use the user model cache instead of a fresh one")
    parser.add_argument("--json", type=Path, default=None, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    import torch

    from lepton_tune.config import PRECISIONS, load_study
    from lepton_tune.data import load_dataset
    from lepton_tune.models import (
        ModelCache,
        accuracy,
        convert_precision,
        precision_support,
        train_model,
    )

    study = load_study(args.study)
    recipe = study.train.model_copy(update={"epochs": 3}) if args.quick else study.train
    backbones = [str(b) for b in study.search_space.values_of("backbone")]
    wanted = [str(p) for p in study.search_space.values_of("precision")]
    precisions = [p for p in PRECISIONS if p in wanted or p == "int8_dynamic"]
    ds = load_dataset(study.dataset)
    cache = ModelCache() if args.cache else ModelCache(Path(tempfile.mkdtemp(prefix="lepton-bench-")))
    svc = _svc(ds)
    print(
        f"digits {study.dataset.image_size}x{study.dataset.image_size}x{study.dataset.channels}: train "
        f"{len(ds.train[1])}, val {len(ds.val[1])}, test {len(ds.test[1])}; recipe {recipe.model_dump()}; "
        f"torch {torch.__version__}, {len(os.sched_getaffinity(0))} cores, {platform.processor() or platform.machine()}",
        file=sys.stderr,
    )
    rows = []
    for backbone in backbones:
        tm = train_model(
            backbone,
            recipe,
            ds,
            cache=cache,
            progress=lambda e: (
                print(
                    f"  {e['backbone']} epoch {e['epoch']}/{e['epochs']} val {e['val_accuracy']:.3f}", file=sys.stderr
                )
                if e["event"] == "epoch"
                else None
            ),
        )
        for precision in precisions:
            reason = precision_support(precision)
            if reason is not None:
                rows.append({"backbone": backbone, "precision": precision, "skipped": reason})
                continue
            cm = convert_precision(tm, precision, ds, cache=cache)
            rows.append(
                {
                    "backbone": backbone,
                    "precision": precision,
                    "test_accuracy": accuracy(cm.module, ds.test),
                    "val_accuracy": cm.val_accuracy,
                    "val_change_vs_fp32": cm.val_accuracy_change,
                    "val_agreement": cm.val_agreement,
                    "epochs_run": tm.epochs_run,
                    "train_seconds": tm.train_seconds,
                    "convert_seconds": cm.convert_seconds,
                    "params": tm.params,
                    "mflops": tm.flops / 1e6,
                }
            )
    print(
        "| backbone | precision | test acc | val acc change vs fp32 | epochs | train s | convert s | params | MFLOPs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        if "skipped" in r:
            print(f"| {r['backbone']} | {r['precision']} | skipped: {r['skipped']} | | | | | | |")
            continue
        print(
            f"| {r['backbone']} | {r['precision']} | {r['test_accuracy']:.2%} | {r['val_change_vs_fp32']:+.2%} | "
            f"{r['epochs_run']} | {r['train_seconds']:.1f} | {r['convert_seconds']:.2f} | {r['params']:,} | "
            f"{r['mflops']:.1f} |"
        )
    print(f"| SVC(gamma=0.001), raw 8x8 pixels | - | {svc:.2%} | | | | | | |")
    best = max((r for r in rows if "test_accuracy" in r), key=lambda r: r["test_accuracy"])
    verdict = "matches or beats" if best["test_accuracy"] >= svc else "is BELOW"
    print(f"\nbest: {best['backbone']} {best['precision']} {best['test_accuracy']:.2%} {verdict} SVC {svc:.2%}")
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    "rows": rows,
                    "svc": svc,
                    "recipe": recipe.model_dump(),
                    "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
