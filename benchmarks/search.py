"""Search efficiency: lepton-tune's search vs plain Optuna vs random search, against the exhaustive front.

Method (one command, one run, same machine):

1. **Exhaustive, measured for real.** A small joint space (2 backbones x 2 precisions x the
   feasible (K, threads) pairs on this host x 2 batch sizes) is evaluated point by point with the
   real pipeline: training (fresh model cache, so its cost is real), precision conversion, the
   engine, the measurement protocol and accuracy through the engine. This gives the reference
   Pareto front, its hypervolume (HV), and each point's measured stage costs (train, convert,
   start, measure, accuracy seconds).
2. **Search methods replayed on that table** (a tabular benchmark, the standard way to compare
   HPO methods over many seeds without re-measuring): each sampler proposes points through
   lepton-tune's own suggestion code; a point's objective values are its measured values, and
   the wall time charged for it follows each method's rules:
   - `lepton-tune` (the default sampler, content-addressed model cache, dedupe): training is charged
     the first time a recipe is needed, conversion the first time a (recipe, precision) is
     needed, a point already evaluated costs nothing, every new point pays start + measure +
     accuracy;
   - `plain-optuna` (TPE on the same space without those): every trial trains, converts and
     measures in full;
   - `tpe`, `random`, `nsga2`, `qmc` with lepton-tune's cache and dedupe, to pick the default
     sampler.
   Per method and seed: trials and charged seconds until HV reaches 95% of the reference HV,
   and the number of training runs. Medians and spread (min-max) over seeds are printed.

Targets (issue 9): lepton-tune reaches 95% of the reference HV within 25% of the exhaustive
wall time; its training runs equal the number of distinct recipes, not trials.

Usage: ``python benchmarks/search.py [--quick] [--seeds N] [--trials N]``
"""

from __future__ import annotations

import argparse
import os
import warnings
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import optuna  # noqa: E402

from lepton_tune.config import SamplerSpec, host_facts, load_study  # noqa: E402
from lepton_tune.report import hypervolume  # noqa: E402
from lepton_tune.tuning import SearchOptions, make_sampler, run_search, suggest_point  # noqa: E402

SPACE = {
    "params": {
        "backbone": {"choices": ["small_cnn", "resnet18"]},
        "precision": {"choices": ["fp32", "bf16"]},
        "shards": {"low": 1, "high": "auto"},
        "threads_per_shard": {"low": 1, "high": "auto"},
        "batch_size": {"choices": [1, 8]},
        "max_wait_ms": 2.0,
        "pool_slots": 32,
    },
    "constraints": ["shards * threads_per_shard <= cores"],
}
OBJECTIVES = ["accuracy", "latency_p95_ms", "memory_mb"]
DIRECTIONS = ["maximize", "minimize", "minimize"]


def study_dict(quick: bool) -> dict[str, Any]:
    return {
        "name": "bench-search",
        "dataset": {"kind": "digits", "image_size": 16 if quick else 32, "channels": 3},
        "train": {"epochs": 3 if quick else 8, "batch_size": 64, "seed": 0},
        "search_space": SPACE,
        "objectives": OBJECTIVES,
        "sampler": {"name": "grid", "seed": 0},
        "n_trials": 10_000,
        "baseline": False,
        "tracking": {"enabled": False},
        "protocol": {"warmup": 10, "requests": 60 if quick else 150, "repeats": 3, "concurrency": 4,
                     "probe_requests": 0, "accuracy_samples": 270 if quick else None},
    }


def key_of(point: dict[str, Any]) -> tuple:
    return tuple(point[k] for k in ("backbone", "precision", "shards", "threads_per_shard", "batch_size"))


def exhaustive(quick: bool, workdir: Path) -> tuple[dict[tuple, dict[str, Any]], float]:
    """Measure every point of the space for real; return the table and the wall time."""
    os.environ["LEPTON_TUNE_CACHE"] = str(workdir / "cache")  # fresh: training cost is real
    spec = load_study(study_dict(quick))
    started = time.perf_counter()
    study = run_search(spec, SearchOptions(run_dir=workdir / "run"))
    wall = time.perf_counter() - started
    table: dict[tuple, dict[str, Any]] = {}
    train_cost: dict[str, float] = {}
    convert_cost: dict[tuple, float] = {}
    for trial in study.get_trials(deepcopy=False):
        if trial.state != optuna.trial.TrialState.COMPLETE or trial.user_attrs.get("duplicate_of") is not None:
            continue
        point, stages = trial.user_attrs["point"], trial.user_attrs["stage_seconds"]
        backbone = point["backbone"]
        train_cost[backbone] = max(train_cost.get(backbone, 0.0), stages["train"])
        convert_cost[(backbone, point["precision"])] = max(convert_cost.get((backbone, point["precision"]), 0.0),
                                                           stages["convert"])
        table[key_of(point)] = {"values": [trial.user_attrs["metrics"][o] for o in OBJECTIVES],
                                "serve": stages["start"] + stages["measure"] + stages["accuracy"],
                                "backbone": backbone, "precision": point["precision"]}
    for row in table.values():
        row["train"] = train_cost[row["backbone"]]
        row["convert"] = convert_cost[(row["backbone"], row["precision"])]
    return table, wall


def losses(values: list[list[float]]) -> np.ndarray:
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in DIRECTIONS])
    return np.asarray(values, dtype=float) * sign


def replay(table: dict[tuple, dict[str, Any]], method: str, seed: int, trials: int, ref: np.ndarray,
           target_hv: float) -> dict[str, Any]:
    """Run one sampler on the table; charge time per the method's rules."""
    spec = load_study(study_dict(True))
    host = host_facts()
    sampler = {"lepton-tune": make_sampler(SamplerSpec(seed=seed), spec.space, host),  # the default sampler
               "plain-optuna": optuna.samplers.TPESampler(seed=seed),
               "tpe": optuna.samplers.TPESampler(seed=seed, constant_liar=True),
               "random": optuna.samplers.RandomSampler(seed=seed),
               "nsga2": optuna.samplers.NSGAIISampler(seed=seed),
               "qmc": optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False)}[method]
    cached = method != "plain-optuna"
    study = optuna.create_study(directions=DIRECTIONS, sampler=sampler)
    seen_points: set[tuple] = set()
    trained: set[str] = set()
    converted: set[tuple] = set()
    charged, trainings, found = 0.0, 0, []
    reached = {"trials": None, "seconds": None}
    for n in range(1, trials + 1):
        trial = study.ask()
        point, reason = suggest_point(trial, spec.space, host)
        row = table.get(key_of(point))
        if reason or row is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        key = key_of(point)
        if not (cached and key in seen_points):
            if not cached or row["backbone"] not in trained:
                charged += row["train"]
                trainings += 1
                trained.add(row["backbone"])
            if not cached or (row["backbone"], row["precision"]) not in converted:
                charged += row["convert"]
                converted.add((row["backbone"], row["precision"]))
            charged += row["serve"]
        seen_points.add(key)
        study.tell(trial, row["values"])
        found.append(row["values"])
        if reached["trials"] is None and hypervolume(losses(found), ref) >= 0.95 * target_hv:
            reached = {"trials": n, "seconds": charged}
    return {"reached": reached, "charged": charged, "trainings": trainings,
            "final_hv": hypervolume(losses(found), ref) / target_hv if found else 0.0}


def summarise(runs: list[dict[str, Any]], key: str) -> str:
    values = [r["reached"][key] for r in runs if r["reached"][key] is not None]
    if not values:
        return "never"
    text = f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"
    missing = len(runs) - len(values)
    return text + (f" ({missing} seed(s) never)" if missing else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16x16 inputs, 3 epochs, short windows (~5 min)")
    parser.add_argument("--seeds", type=int, default=None, help="replay seeds per method (default 20, quick 10)")
    parser.add_argument("--trials", type=int, default=None, help="trial budget per replay (default: table size)")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seeds = args.seeds or (10 if args.quick else 20)
    with tempfile.TemporaryDirectory(prefix="lepton-bench-search-") as tmp:
        print(f"# search benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, "
              f"{host_facts().cores} cores")
        table, wall = exhaustive(args.quick, Path(tmp))
    trials = args.trials or len(table)
    all_losses = losses([row["values"] for row in table.values()])
    ref = all_losses.max(axis=0) + 0.1 * np.maximum(all_losses.max(axis=0) - all_losses.min(axis=0), 1e-9)
    target = hypervolume(all_losses, ref)
    print(f"exhaustive: {len(table)} points measured for real in {wall:.0f} s (incl. training {len({r['backbone'] for r in table.values()})} recipes)")
    print(f"reference HV {target:.4g} (reference point = worst per objective + 10% of range)")
    print(f"replay: {seeds} seeds per method, budget {trials} trials each; charged seconds from measured stage costs\n")
    print("| method | trials to 95% HV, median [min-max] | seconds to 95% HV | as % of exhaustive wall | trainings (median) | final HV % |")
    print("|---|---|---|---|---|---|")
    for method in ["lepton-tune", "plain-optuna", "tpe", "random", "nsga2", "qmc"]:
        runs = [replay(table, method, seed, trials, ref, target) for seed in range(seeds)]
        secs = [r["reached"]["seconds"] for r in runs if r["reached"]["seconds"] is not None]
        frac = f"{100 * statistics.median(secs) / wall:.0f}%" if secs else "-"
        print(f"| {method} | {summarise(runs, 'trials')} | {summarise(runs, 'seconds')} | {frac} | "
              f"{statistics.median(r['trainings'] for r in runs):.0f} | "
              f"{100 * statistics.median(r['final_hv'] for r in runs):.1f}% |")
    print(f"\ntarget: lepton-tune reaches 95% HV within 25% of the exhaustive wall time ({0.25 * wall:.0f} s); "
          "trainings = distinct recipes (2).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
