"""Search cost, measured for real: samplers replayed over a measured table, and a real run against plain Optuna.

One command, same host, three parts:

1. **A measured table** (``--table-points N [--table CSV]``; committed as
   ``benchmarks/data/table-64.csv``): N points of a 64x64 version of the cpu-latency-224 space
   (5 torchvision backbones x fp32/bf16/int8 x eager / ONNX Runtime / OpenVINO (ONNX Runtime and
   OpenVINO in process or thread lanes) x K, threads, batch, max_wait; pinning off: 585 points on
   2 cores, bf16 on ONNX Runtime is infeasible and free), each measured for real with the study
   protocol below (warm trials, synthetic 64x64 images, untrained weights: latency, memory and
   cost are the objectives), in the grid sampler's seeded order; one CSV row per point, after
   ``#`` lines with the host fingerprint, date, protocol and command.
2. **Replay** (``--replay-table CSV [--seeds 20]``, and part of every default run): qmc
   (scrambled, seeded per seed), tpe, random and nsga2 over the table, with lepton-tune's
   suggestion code, cache and dedupe: each new point is charged its measured stage costs
   (conversion once per (backbone, precision, runtime), engine start + measurement + accuracy per
   point), a repeat costs nothing. Printed: trials and seconds to 90/95/99% of the table's
   hypervolume, median and 2.5-97.5% range over seeds, and seconds as a share of the exhaustive
   (whole-table) cost. Target: 95% HV within 20% of the exhaustive cost (median over seeds).
3. **Real run** (``benchmarks/_real_search.py``): lepton-tune (warm trials + multi-fidelity + cache
   + dedupe), lepton-tune's defaults (multi-fidelity off) and a sensible plain-Optuna user (TPE,
   the model trained once per backbone, every point measured in full), same wall budget, seeds
   interleaved; hypervolume over wall time for each, on one yardstick. Target: >= 2x less wall
   time to 95% HV than plain Optuna.

Usage: ``python benchmarks/search.py [--quick] [--seeds N] [--real-seeds N] [--budget S]``
(``--quick``: 5 replay seeds, one 45 s real run per side on 16x16 images, under 5 minutes; full:
about 25 minutes).
Run it alone on the host (``cpu-exclusive`` here): the real run measures latency.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import json

import numpy as np
import optuna
from _real_search import SIDES, compare

from lepton_tune.config import SamplerSpec, host_facts, load_study
from lepton_tune.measure import host_fingerprint
from lepton_tune.report import hypervolume
from lepton_tune.tuning import SearchOptions, make_sampler, run_search, suggest_point

TABLE_SPACE = {
    "params": {
        "backbone": {
            "choices": ["resnet18", "mobilenet_v3_small", "mobilenet_v3_large", "efficientnet_b0", "regnet_x_400mf"]
        },
        "precision": {"choices": ["fp32", "bf16", "int8"]},
        "runtime": {"choices": ["eager", "onnxruntime", "openvino"]},
        "isolation": {"choices": ["process", "thread"]},
        "shards": {"low": 1, "high": "auto"},
        "threads_per_shard": {"low": 1, "high": "auto"},
        "pin": False,
        "batch_size": {"choices": [1, 8]},
        "max_wait_ms": {"choices": [0.0, 5.0]},
        "pool_slots": 16,
    },
    "constraints": [
        "shards * threads_per_shard <= cores",
        'runtime != "onnxruntime" or precision != "bf16"',
        'isolation == "process" or runtime != "eager"',
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
        # Grid cells that differ only in a parameter the point does not use (isolation of an eager lane,
        # max_wait at batch 1, ...) are the same point, replayed for free: count distinct measured points.
        done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
        if sum(t.user_attrs.get("duplicate_of") is None for t in done) >= points:
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
    done = sum(
        1
        for t in study.get_trials(deepcopy=False)
        if t.user_attrs.get("lepton_status") == "ok" and t.user_attrs.get("duplicate_of") is None
    )
    print(f"table: {rows} rows ({done} measured ok, the rest infeasible or failed) in {wall:.0f} s -> {out}")
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
    """One product sampler over the table; (trials, charged seconds) when each HV share is first reached.

    Asks go on until 99% is reached or twice the table's size was asked: a suggestion the
    space's constraints reject is a free trial (no measurement), as in a real search.
    """
    spec = load_study(table_study(len(table)))
    host = host_facts()
    sampler = make_sampler(SamplerSpec(name=method, seed=seed), spec.space, host)
    study = optuna.create_study(directions=["minimize"] * 3, sampler=sampler)
    seen, converted, found, charged = set(), set(), [], 0.0
    reached: dict[float, tuple[int, float] | None] = {0.9: None, 0.95: None, 0.99: None}
    for n in range(1, 2 * len(table) + 1):
        trial = study.ask()
        point, reason = suggest_point(trial, spec.space, host)
        key = tuple(str(point.get(k)) for k in TABLE_KEYS)
        row = table.get(key)
        if reason or row is None or row["values"] is None:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            continue
        if key not in seen:  # dedupe: a repeat replays the first record and costs nothing
            charged += row["serve"] + (0.0 if row["model"] in converted else row["convert"])
            converted.add(row["model"])
            seen.add(key)
            found.append(row["values"])
            share = hypervolume(np.asarray(found), ref) / full_hv
            for goal, hit in list(reached.items()):
                if hit is None and share >= goal:
                    reached[goal] = (n, charged)
        study.tell(trial, row["values"])
        if reached[0.99] is not None:
            break
    return reached


def _interval(values: np.ndarray) -> str:
    return f"{np.median(values):.0f} [{np.percentile(values, 2.5):.0f}-{np.percentile(values, 97.5):.0f}]"


def replay_main(path: Path, seeds: int) -> dict[str, list[float | None]]:
    """Replay every product sampler over the table; print the table; seconds to 95% HV per method and seed."""
    table, meta = read_table(path)
    measured = np.asarray([r["values"] for r in table.values() if r["values"] is not None])
    ref = measured.max(axis=0) + 0.1 * np.maximum(measured.max(axis=0) - measured.min(axis=0), 1e-9)
    full_hv = hypervolume(measured, ref)
    exhaustive_s = sum(r["serve"] for r in table.values()) + sum(
        {r["model"]: r["convert"] for r in table.values()}.values()
    )
    host = meta.get("host", {})
    print(
        f"## replay of {path}: {len(table)} points, {len(measured)} measured (the rest failed or were infeasible); "
        f"host {host.get('cpu_model')} ({host.get('cores')} cores), {meta.get('date')}; {seeds} seeds per sampler; "
        f"exhaustive (every point once) charged {exhaustive_s:.0f} s\n"
    )
    print("| sampler | HV share | trials, median [2.5-97.5%] | seconds, median [2.5-97.5%] | % of exhaustive | seeds |")
    print("|---|---|---|---|---|---|")
    to_95: dict[str, list[float | None]] = {}
    methods = ("qmc", "tpe", "random", "nsga2")
    with ProcessPoolExecutor(max_workers=os.cpu_count()) as pool:  # a replay measures nothing: use every core
        futures = {
            (m, seed): pool.submit(replay_table, table, m, seed, ref, full_hv) for m in methods for seed in range(seeds)
        }
        replays = {key: future.result() for key, future in futures.items()}
    for method in methods:
        runs = [replays[(method, seed)] for seed in range(seeds)]
        to_95[method] = [None if r[0.95] is None else r[0.95][1] for r in runs]
        for goal in (0.9, 0.95, 0.99):
            hits = [r[goal] for r in runs if r[goal] is not None]
            if not hits:
                print(f"| {method} | {goal:.0%} | never | never | - | 0/{seeds} |")
                continue
            trials_, secs = np.array([h[0] for h in hits]), np.array([h[1] for h in hits])
            share = 100 * secs / exhaustive_s
            print(
                f"| {method} | {goal:.0%} | {_interval(trials_)} | {_interval(secs)} | "
                f"{np.median(share):.1f}% [{np.percentile(share, 2.5):.1f}-{np.percentile(share, 97.5):.1f}] | "
                f"{len(hits)}/{seeds} |"
            )
    default = SamplerSpec().name
    hits = np.array([v for v in to_95[default] if v is not None]) / exhaustive_s
    if len(hits):
        print(
            f"\ntarget (95% HV within 20% of the exhaustive cost, median over seeds): default sampler {default} "
            f"{100 * np.median(hits):.1f}% (97.5th percentile {100 * np.percentile(hits, 97.5):.1f}%): "
            f"{'met' if np.median(hits) <= 0.20 and len(hits) == seeds else 'MISSED'}"
        )
    return to_95


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="5 replay seeds, one 45 s real run per side (< 5 min)")
    parser.add_argument("--seeds", type=int, default=None, help="replay seeds per sampler (default 20, quick 5)")
    parser.add_argument("--real-seeds", type=int, default=None, help="real runs per side (default 3, quick 1)")
    parser.add_argument("--budget", type=float, default=None, help="wall seconds per real run (default 150, quick 45)")
    parser.add_argument(
        "--sides", default="plain,lepton-mf,lepton", help="real-run sides, comma-separated (plain, lepton-mf, lepton)"
    )
    parser.add_argument("--no-replay", action="store_true", help="skip the replay (only the real run)")
    parser.add_argument("--table-points", type=int, default=None, help="measure N points of the realistic space")
    parser.add_argument("--table", type=Path, default=Path("benchmarks/data/table-64.csv"))
    parser.add_argument("--replay-table", type=Path, default=None, help="only replay the samplers over this table")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="lepton_tune")
    seeds = args.seeds or (5 if args.quick else 20)
    if args.table_points is not None:
        with tempfile.TemporaryDirectory(prefix="lepton-bench-table-") as tmp:
            return 0 if make_table(args.table_points, args.table, Path(tmp)) else 1
    if args.replay_table is not None:
        replay_main(args.replay_table, seeds)
        return 0
    print(
        f"# search benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, "
        f"{host_facts().cores} cores\n"
    )
    if not args.no_replay:
        replay_main(args.table, seeds)
    budget = args.budget or (45.0 if args.quick else 150.0)
    real_seeds = args.real_seeds or (1 if args.quick else 3)
    sides = tuple(args.sides.split(","))
    unknown = sorted(set(sides) - set(SIDES))
    if unknown:
        parser.error(f"--sides: unknown {', '.join(unknown)}; choose from {', '.join(SIDES)}")
    print(f"\n## real run: lepton-tune vs plain Optuna, {budget:.0f} s per run, {real_seeds} seed(s) per side\n")
    with tempfile.TemporaryDirectory(prefix="lepton-bench-search-") as tmp:
        compare(args.quick, real_seeds, budget, Path(tmp), sides)
    return 0


if __name__ == "__main__":
    sys.exit(main())
