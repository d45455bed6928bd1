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

**Realistic-space table (issue 15).** ``--table-points N [--table CSV]`` measures N points of a
64x64 version of the cpu-latency-224 space (5 torchvision backbones x fp32/bf16/int8 x eager /
ONNX Runtime (process or thread lanes) x K, threads, pinning, batch, max_wait: about 630 points)
for real, each with the study protocol below (warm trials, synthetic 64x64 images, untrained
weights: speed, memory and cost are the objectives), in the grid sampler's seeded order, and
writes one CSV row per point (``#`` lines first: host fingerprint, date, protocol, command).
``--replay-table CSV [--seeds 20]`` replays qmc (scrambled, seeded per seed), tpe, random and
nsga2 over that table, charging each new point its measured stage costs (conversion once per
(backbone, precision, runtime), engine start + measurement + accuracy per point), and prints
trials and seconds to 90/95/99% of the table's hypervolume: median and the 2.5-97.5% range over seeds.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import json

import numpy as np
import optuna

from lepton_tune.config import SamplerSpec, host_facts, load_study
from lepton_tune.measure import host_fingerprint
from lepton_tune.report import hypervolume
from lepton_tune.tuning import SearchOptions, make_sampler, run_search, suggest_point

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
        "protocol": {
            "warmup": 10,
            "requests": 60 if quick else 150,
            "repeats": 3,
            "concurrency": 4,
            "probe_requests": 0,
            "accuracy_samples": 270 if quick else None,
        },
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
        convert_cost[(backbone, point["precision"])] = max(
            convert_cost.get((backbone, point["precision"]), 0.0), stages["convert"]
        )
        table[key_of(point)] = {
            "values": [trial.user_attrs["metrics"][o] for o in OBJECTIVES],
            "serve": stages["start"] + stages["measure"] + stages["accuracy"],
            "backbone": backbone,
            "precision": point["precision"],
        }
    for row in table.values():
        row["train"] = train_cost[row["backbone"]]
        row["convert"] = convert_cost[(row["backbone"], row["precision"])]
    return table, wall


def losses(values: list[list[float]]) -> np.ndarray:
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in DIRECTIONS])
    return np.asarray(values, dtype=float) * sign


def replay(
    table: dict[tuple, dict[str, Any]], method: str, seed: int, trials: int, ref: np.ndarray, target_hv: float
) -> dict[str, Any]:
    """Run one sampler on the table; charge time per the method's rules."""
    spec = load_study(study_dict(True))
    host = host_facts()
    sampler = {
        "lepton-tune": make_sampler(SamplerSpec(seed=seed), spec.space, host),  # the default sampler
        "plain-optuna": optuna.samplers.TPESampler(seed=seed),
        "tpe": optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        "random": optuna.samplers.RandomSampler(seed=seed),
        "nsga2": optuna.samplers.NSGAIISampler(seed=seed),
        "qmc": optuna.samplers.QMCSampler(seed=seed, warn_independent_sampling=False),
    }[method]
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
    return {
        "reached": reached,
        "charged": charged,
        "trainings": trainings,
        "final_hv": hypervolume(losses(found), ref) / target_hv if found else 0.0,
    }


def summarise(runs: list[dict[str, Any]], key: str) -> str:
    values = [r["reached"][key] for r in runs if r["reached"][key] is not None]
    if not values:
        return "never"
    text = f"{statistics.median(values):.1f} [{min(values):.1f}-{max(values):.1f}]"
    missing = len(runs) - len(values)
    return text + (f" ({missing} seed(s) never)" if missing else "")


TABLE_SPACE = {
    "params": {
        "backbone": {
            "choices": ["resnet18", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "regnet_x_400mf"]
        },
        "precision": {"choices": ["fp32", "bf16", "int8"]},
        "runtime": {"choices": ["eager", "onnxruntime"]},
        "isolation": {"choices": ["process", "thread"]},
        "shards": {"low": 1, "high": "auto"},
        "threads_per_shard": {"low": 1, "high": "auto"},
        "pin": {"choices": [False, True]},
        "batch_size": {"choices": [1, 8]},
        "max_wait_ms": {"choices": [0.0, 5.0]},
        "pool_slots": 16,
    },
    "constraints": [
        "shards * threads_per_shard <= cores",
        'runtime != "onnxruntime" or precision != "bf16"',
        'isolation == "process" or runtime == "onnxruntime"',
        "batch_size > 1 or max_wait_ms == 0.0",
    ],
}
TABLE_OBJECTIVES = ["latency_p95_ms", "memory_mb", "cost_per_million"]
TABLE_KEYS = [
    "backbone",
    "precision",
    "runtime",
    "isolation",
    "shards",
    "threads_per_shard",
    "pin",
    "batch_size",
    "max_wait_ms",
]
STAGES = ["convert", "export", "start", "measure", "accuracy"]


def table_study(points: int) -> dict[str, Any]:
    return {
        "name": "bench-table",
        "dataset": {"kind": "synthetic", "image_size": 64, "channels": 3, "num_classes": 1000, "samples": 64},
        "train": {"epochs": 0},
        "search_space": TABLE_SPACE,
        "objectives": TABLE_OBJECTIVES,
        "sampler": {"name": "grid", "seed": 0},
        "n_trials": 10_000,
        "baseline": False,
        "tracking": {"enabled": False},
        "protocol": {"warmup": 10, "requests": 150, "repeats": 3, "concurrency": 4, "warm": True},
    }


def make_table(points: int, out: Path, workdir: Path) -> int:
    """Measure ``points`` grid points for real and write them to ``out`` (CSV with # metadata lines)."""
    os.environ["LEPTON_TUNE_CACHE"] = str(workdir / "cache")  # fresh: conversion and export costs are real
    spec = load_study(table_study(points))
    started = time.perf_counter()

    def enough(study: optuna.Study, _trial: optuna.trial.FrozenTrial) -> None:
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if len(done) >= points:  # pruned grid cells (the space's constraints) are free and not counted
            study.stop()

    study = run_search(spec, SearchOptions(run_dir=workdir / "run", callbacks=[enough]))
    wall = time.perf_counter() - started
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    with out.open("w", newline="") as handle:
        for key, value in {
            "host": host_fingerprint(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "protocol": spec.protocol.model_dump(),
            "wall_s": round(wall, 1),
            "command": f"python benchmarks/search.py --table-points {points} --table {out}",
        }.items():
            handle.write(f"# {key}: {json.dumps(value)}\n")
        writer = csv.writer(handle)
        writer.writerow(
            ["trial", "status", *TABLE_KEYS, *TABLE_OBJECTIVES, "throughput", *[f"{s}_s" for s in STAGES], "reason"]
        )
        for trial in study.get_trials(deepcopy=False):
            attrs = trial.user_attrs
            point, metrics, stages = (
                attrs.get("point", {}),
                attrs.get("metrics") or {},
                attrs.get("stage_seconds") or {},
            )
            if not point or attrs.get("duplicate_of") is not None:
                continue
            writer.writerow(
                [
                    trial.number,
                    attrs.get("lepton_status", trial.state.name.lower()),
                    *[point.get(k) for k in TABLE_KEYS],
                    *[metrics.get(o) for o in TABLE_OBJECTIVES],
                    metrics.get("throughput"),
                    *[stages.get(s, 0.0) for s in STAGES],
                    attrs.get("reason", ""),
                ]
            )
            rows += 1
    print(f"table: {rows} points measured in {wall:.0f} s -> {out}")
    return rows


def read_table(path: Path) -> tuple[dict[tuple, dict[str, Any]], dict[str, Any]]:
    meta, lines = {}, []
    for line in path.read_text().splitlines():
        if line.startswith("# "):
            key, _, value = line[2:].partition(": ")
            meta[key] = json.loads(value)
        else:
            lines.append(line)
    table = {}
    for row in csv.DictReader(lines):
        key = tuple(str(row[k]) for k in TABLE_KEYS)
        values = [row[o] for o in TABLE_OBJECTIVES]
        ok = row["status"] == "ok" and all(values)
        table[key] = {
            "values": [float(v) for v in values] if ok else None,
            "convert": float(row["convert_s"]) + float(row["export_s"]),
            "serve": sum(float(row[f"{s}_s"]) for s in ("start", "measure", "accuracy")),
            "model": (row["backbone"], row["precision"], row["runtime"]),
        }
    convert: dict[tuple, float] = {}  # paid by the first point of a model (a cache miss), charged once per model
    for entry in table.values():
        convert[entry["model"]] = max(convert.get(entry["model"], 0.0), entry["convert"])
    for entry in table.values():
        entry["convert"] = convert[entry["model"]]
    return table, meta


def replay_table(
    table: dict[tuple, dict[str, Any]], method: str, seed: int, ref: np.ndarray, full_hv: float
) -> dict[float, tuple[int, float] | None]:
    """One sampler over the table; (trials, charged seconds) when each HV share is first reached."""
    spec = load_study(table_study(len(table)))
    host = host_facts()
    sampler = {
        "qmc": lambda: optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed, constant_liar=True),
        "random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
    }[method]()
    study = optuna.create_study(directions=["minimize"] * 3, sampler=sampler)
    seen, converted, found, charged = set(), set(), [], 0.0
    reached: dict[float, tuple[int, float] | None] = {0.9: None, 0.95: None, 0.99: None}
    for n in range(1, len(table) + 1):
        trial = study.ask()
        point, reason = suggest_point(trial, spec.space, host)
        key = tuple(str(point.get(k)) for k in TABLE_KEYS)
        row = table.get(key)
        if reason or row is None or row["values"] is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        if key not in seen:
            charged += row["serve"] + (0.0 if row["model"] in converted else row["convert"])
            converted.add(row["model"])
            seen.add(key)
            found.append(row["values"])
        study.tell(trial, row["values"])
        share = hypervolume(np.asarray(found), ref) / full_hv
        for goal, hit in list(reached.items()):
            if hit is None and share >= goal:
                reached[goal] = (n, charged)
    return reached


def replay_main(path: Path, seeds: int) -> int:
    table, meta = read_table(path)
    measured = [r["values"] for r in table.values() if r["values"] is not None]
    if not measured:
        print(f"{path}: no measured point to replay")
        return 1
    losses_all = np.asarray(measured)
    ref = losses_all.max(axis=0) + 0.1 * np.maximum(losses_all.max(axis=0) - losses_all.min(axis=0), 1e-9)
    full_hv = hypervolume(losses_all, ref)
    exhaustive_s = sum(r["serve"] for r in table.values()) + sum(
        {r["model"]: r["convert"] for r in table.values()}.values()
    )
    print(
        f"# replay of {path} ({len(table)} points, {len(measured)} measured; host {meta.get('host', {}).get('cpu_model')}, "
        f"{meta.get('date')}); {seeds} seeds; exhaustive charged {exhaustive_s:.0f} s"
    )
    print(
        "| method | HV share | trials, median [2.5-97.5%] | seconds, median [2.5-97.5%] | % of exhaustive | seeds reached |"
    )
    print("|---|---|---|---|---|---|")
    for method in ("qmc", "tpe", "random", "nsga2"):
        runs = [replay_table(table, method, seed, ref, full_hv) for seed in range(seeds)]
        for goal in (0.9, 0.95, 0.99):
            hits = [r[goal] for r in runs if r[goal] is not None]
            if not hits:
                print(f"| {method} | {goal:.0%} | never | never | - | 0/{seeds} |")
                continue
            trials_, secs = np.array([h[0] for h in hits]), np.array([h[1] for h in hits])
            print(
                f"| {method} | {goal:.0%} | {np.median(trials_):.0f} [{np.percentile(trials_, 2.5):.0f}-"
                f"{np.percentile(trials_, 97.5):.0f}] | {np.median(secs):.0f} [{np.percentile(secs, 2.5):.0f}-"
                f"{np.percentile(secs, 97.5):.0f}] | {100 * np.median(secs) / exhaustive_s:.0f}% | {len(hits)}/{seeds} |"
            )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="16x16 inputs, 3 epochs, short windows (~5 min)")
    parser.add_argument("--seeds", type=int, default=None, help="replay seeds per method (default 20, quick 10)")
    parser.add_argument("--trials", type=int, default=None, help="trial budget per replay (default: table size)")
    parser.add_argument("--table-points", type=int, default=None, help="measure N points of the realistic space")
    parser.add_argument("--table", type=Path, default=Path("benchmarks/data/table-64.csv"))
    parser.add_argument("--replay-table", type=Path, default=None, help="replay the samplers over a measured table")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    seeds = args.seeds or (10 if args.quick else 20)
    if args.table_points is not None:
        with tempfile.TemporaryDirectory(prefix="lepton-bench-table-") as tmp:
            return 0 if make_table(args.table_points, args.table, Path(tmp)) else 1
    if args.replay_table is not None:
        return replay_main(args.replay_table, seeds)
    with tempfile.TemporaryDirectory(prefix="lepton-bench-search-") as tmp:
        print(
            f"# search benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, "
            f"{host_facts().cores} cores"
        )
        table, wall = exhaustive(args.quick, Path(tmp))
    trials = args.trials or len(table)
    all_losses = losses([row["values"] for row in table.values()])
    ref = all_losses.max(axis=0) + 0.1 * np.maximum(all_losses.max(axis=0) - all_losses.min(axis=0), 1e-9)
    target = hypervolume(all_losses, ref)
    print(
        f"exhaustive: {len(table)} points measured for real in {wall:.0f} s (incl. training {len({r['backbone'] for r in table.values()})} recipes)"
    )
    print(f"reference HV {target:.4g} (reference point = worst per objective + 10% of range)")
    print(f"replay: {seeds} seeds per method, budget {trials} trials each; charged seconds from measured stage costs\n")
    print(
        "| method | trials to 95% HV, median [min-max] | seconds to 95% HV | as % of exhaustive wall | trainings (median) | final HV % |"
    )
    print("|---|---|---|---|---|---|")
    for method in ["lepton-tune", "plain-optuna", "tpe", "random", "nsga2", "qmc"]:
        runs = [replay(table, method, seed, trials, ref, target) for seed in range(seeds)]
        secs = [r["reached"]["seconds"] for r in runs if r["reached"]["seconds"] is not None]
        frac = f"{100 * statistics.median(secs) / wall:.0f}%" if secs else "-"
        print(
            f"| {method} | {summarise(runs, 'trials')} | {summarise(runs, 'seconds')} | {frac} | "
            f"{statistics.median(r['trainings'] for r in runs):.0f} | "
            f"{100 * statistics.median(r['final_hv'] for r in runs):.1f}% |"
        )
    print(
        f"\ntarget: lepton-tune reaches 95% HV within 25% of the exhaustive wall time ({0.25 * wall:.0f} s); "
        "trainings = distinct recipes (2)."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
