"""The real (not replayed) search comparison of benchmarks/search.py: lepton-tune against a sensible plain-Optuna user.

Both sides search one joint space (2 backbones trained on digits x fp32/bf16/int8 x eager/ONNX
Runtime x K, threads, batch, max_wait) on this host, for the same wall budget, one after the
other, seed by seed (plain s0, lepton s0, plain s1, ...). Before the first run both backbones are
trained once into a model cache; each run starts from a copy of that cache (trained weights
only), so neither side pays training and each pays its own conversions.

- **plain Optuna**: ``TPESampler(seed)`` and ``study.optimize``; the objective suggests the point
  (the same space and constraint), takes the model trained once per backbone, and measures every
  suggested point in full with the study protocol, a point suggested twice is measured twice.
  It measures with lepton-tune's own trial harness, warm trials included: its values are the same
  definitions as the other side's (comparable on one front), and what differs is only the search.
- **lepton-tune**: ``run_search`` with the default sampler, warm trials, multi-fidelity
  (``protocol.short_fraction``), the model cache and dedupe.

A point counts for a side when that side measured it in full (a short-window stop does not). Every
measurement of a point, by either side and seed, is pooled: its median values are that point's
values, so both sides are scored on one yardstick, the hypervolume (HV) of the points found so far
as a share of the HV of every point either side found, over wall time since the run started.
"""

from __future__ import annotations

import os
import shutil
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import optuna
from _stats import bootstrap_median

from lepton_tune.config import host_facts, load_study
from lepton_tune.front import TrialRecord
from lepton_tune.measure import warm_trials
from lepton_tune.report import hypervolume
from lepton_tune.tuning import Infeasible, SearchOptions, run_search, suggest_point
from lepton_tune.tuning._objective import evaluate_point
from lepton_tune.tuning._prepare import ModelPreparer

SPACE = {
    "params": {
        "backbone": {"choices": ["small_cnn", "resnet18"]},
        "precision": {"choices": ["fp32", "bf16", "int8"]},
        "runtime": {"choices": ["eager", "onnxruntime"]},
        "shards": {"low": 1, "high": "auto"},
        "threads_per_shard": {"low": 1, "high": "auto"},
        "batch_size": {"choices": [1, 8]},
        "max_wait_ms": {"choices": [0.0, 2.0]},
        "pool_slots": 16,
    },
    "constraints": [
        "shards * threads_per_shard <= cores",
        'runtime != "onnxruntime" or precision != "bf16"',
        "batch_size > 1 or max_wait_ms == 0.0",
    ],
}
OBJECTIVES = ["accuracy", "latency_p95_ms", "memory_mb"]
SIGNS = np.array([-1.0, 1.0, 1.0])  # accuracy is maximised
KEYS = ["backbone", "precision", "runtime", "shards", "threads_per_shard", "batch_size", "max_wait_ms"]
Event = tuple[float, tuple[Any, ...], list[float]]  # (seconds since the run began, point key, values)


def study_dict(quick: bool, *, multi_fidelity: bool) -> dict[str, Any]:
    protocol: dict[str, Any] = {
        "warmup": 10,
        "requests": 60 if quick else 150,
        "repeats": 3,
        "concurrency": 4,
        "accuracy_samples": 270,
        "warm": True,
    }
    if multi_fidelity:
        protocol["short_fraction"] = 0.25
    return {
        "name": "bench-real-search",
        "dataset": {"kind": "digits", "image_size": 16 if quick else 32, "channels": 3},
        "train": {"epochs": 3 if quick else 6, "batch_size": 64, "seed": 0},
        "search_space": SPACE,
        "objectives": OBJECTIVES,
        "n_trials": 10_000,
        "baseline": False,
        "tracking": {"enabled": False},
        "protocol": protocol,
    }


def key_of(point: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(point.get(k) for k in KEYS)


def pretrain(quick: bool, cache: Path) -> float:
    """Train both backbones once into ``cache``; the seconds it took."""
    os.environ["LEPTON_TUNE_CACHE"] = str(cache)
    spec = load_study(study_dict(quick, multi_fidelity=False))
    preparer, started = ModelPreparer(spec), time.perf_counter()
    for backbone in SPACE["params"]["backbone"]["choices"]:
        preparer.prepare({"backbone": backbone, "precision": "fp32", "device": "cpu", **point_train(spec)})
    return time.perf_counter() - started


def point_train(spec: Any) -> dict[str, Any]:
    return {f"train.{k}": v for k, v in spec.train.model_dump().items()}


def run_plain(quick: bool, seed: int, budget: float, work: Path) -> list[Event]:
    """A plain Optuna user: TPE, every suggested point measured in full, the trained model reused."""
    spec = load_study(study_dict(quick, multi_fidelity=False))
    host, preparer, events = host_facts(), ModelPreparer(spec), []
    defaults = point_train(spec)
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> list[float]:
        point, reason = suggest_point(trial, spec.space, host, defaults=defaults)
        if reason:
            raise optuna.TrialPruned(reason)
        try:
            record = evaluate_point(point, spec, host, preparer)
        except Infeasible as exc:
            raise optuna.TrialPruned(str(exc)) from None
        values = [float(record["metrics"][o]) for o in OBJECTIVES]
        events.append((time.perf_counter() - started, key_of(point), values))
        return values

    study = optuna.create_study(
        directions=["maximize", "minimize", "minimize"],
        sampler=optuna.samplers.TPESampler(seed=seed),
        storage=f"sqlite:///{work / 'plain.db'}",
    )
    with warm_trials(True):
        study.optimize(objective, timeout=budget, catch=(Exception,))
    return events


def run_lepton(
    quick: bool, seed: int, budget: float, work: Path, *, multi_fidelity: bool
) -> tuple[list[Event], dict[str, int]]:
    """lepton-tune's search: default sampler, warm trials, cache and dedupe, with or without multi-fidelity."""
    spec = load_study(study_dict(quick, multi_fidelity=multi_fidelity))
    events: list[Event] = []
    counts = {"full": 0, "short": 0, "duplicate": 0}
    started = time.perf_counter()

    def record(_study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        rec = TrialRecord.of(trial)
        if trial.state != optuna.trial.TrialState.COMPLETE or rec.baseline or trial.values is None:
            return
        if rec.duplicate_of is not None:
            counts["duplicate"] += 1
        elif rec.fidelity == "short":
            counts["short"] += 1
        else:
            counts["full"] += 1
            events.append((time.perf_counter() - started, key_of(rec.point), list(trial.values)))

    run_search(spec, SearchOptions(run_dir=work / "lepton", timeout=budget, seed=seed, callbacks=[record]))
    return events, counts


def consensus(runs: list[list[Event]]) -> dict[tuple[Any, ...], np.ndarray]:
    """Each point's median values (as losses) over every full measurement of it, by any side or seed."""
    pooled: dict[tuple[Any, ...], list[list[float]]] = {}
    for events in runs:
        for _, key, values in events:
            pooled.setdefault(key, []).append(values)
    return {key: np.median(np.asarray(v), axis=0) * SIGNS for key, v in pooled.items()}


def time_to(
    events: list[Event], table: dict[tuple[Any, ...], np.ndarray], ref: np.ndarray, goal: float
) -> float | None:
    """Seconds until the points found reach ``goal`` of the HV of every point in ``table``."""
    full = hypervolume(np.asarray(list(table.values())), ref)
    found: dict[tuple[Any, ...], np.ndarray] = {}
    for seconds, key, _ in events:
        found[key] = table[key]
        if hypervolume(np.asarray(list(found.values())), ref) >= goal * full:
            return seconds
    return None


def share_at(events: list[Event], table: dict[tuple[Any, ...], np.ndarray], ref: np.ndarray, budget: float) -> float:
    """HV share of the points a side had measured in full by ``budget`` seconds."""
    keys = {key for seconds, key, _ in events if seconds <= budget}
    if not keys:
        return 0.0
    full = hypervolume(np.asarray(list(table.values())), ref)
    return hypervolume(np.asarray([table[k] for k in keys]), ref) / full


def ratio_line(plain: list[float | None], lepton: list[float | None], budget: float, label: str) -> str:
    """Per-seed ``plain / lepton`` seconds to 95% HV, and their median with a 95% bootstrap interval.

    A side that never got there within the budget is censored at the budget: a plain miss counts
    as ``budget / lepton`` (a lower bound of its true ratio), a lepton-tune miss as ``plain / budget``.
    """
    ratios = []
    for p, lt in zip(plain, lepton, strict=True):
        if p is None and lt is None:
            continue
        ratios.append((budget if p is None else p) / (budget if lt is None else lt))
    shown = ", ".join(f"{r:.2f}x" for r in ratios)
    line = f"wall time to 95% HV, plain / {label}, per seed (a miss censored at the budget): {shown}"
    if len(ratios) >= 2:
        iv = bootstrap_median(ratios)
        verdict = "MET" if iv.low >= 2.0 else "MISSED"
        line += (
            f"; median {iv.median:.2f}x [95% CI {iv.low:.2f}, {iv.high:.2f}]: target >= 2x by the lower bound {verdict}"
        )
    return line


def _fmt(values: list[float | None]) -> str:
    hit = [v for v in values if v is not None]
    if not hit:
        return "never"
    missed = len(values) - len(hit)
    text = f"{statistics.median(hit):.0f} [{min(hit):.0f}-{max(hit):.0f}]"
    return text + (f" ({missed} never)" if missed else "")


SIDES = {
    "plain": "plain Optuna (TPE, every point in full)",
    "lepton-mf": "lepton-tune, multi-fidelity on",
    "lepton": "lepton-tune defaults (multi-fidelity off)",
}


def run_side(side: str, quick: bool, seed: int, budget: float, work: Path) -> tuple[list[Event], dict[str, int]]:
    if side == "plain":
        events = run_plain(quick, seed, budget, work)
        return events, {"full": len(events), "short": 0, "duplicate": 0}
    return run_lepton(quick, seed, budget, work, multi_fidelity=side == "lepton-mf")


def compare(
    quick: bool, seeds: int, budget: float, work: Path, sides: tuple[str, ...] = tuple(SIDES)
) -> dict[str, Any]:
    """Run each of ``sides`` ``seeds`` times, interleaved; print HV over wall time and the ratio to 95% HV."""
    trained = work / "trained"
    print(f"pretraining both backbones once: {pretrain(quick, trained):.0f} s (not charged to any side)")
    runs: dict[str, list[list[Event]]] = {side: [] for side in sides}
    counts: dict[str, list[dict[str, int]]] = {side: [] for side in sides}
    for seed in range(seeds):
        for side in sides:
            cache, run_work = work / f"cache-{side}-{seed}", work / f"{side}-{seed}"
            shutil.copytree(trained, cache)
            os.environ["LEPTON_TUNE_CACHE"] = str(cache)
            run_work.mkdir()
            events, count = run_side(side, quick, seed, budget, run_work)
            runs[side].append(events)
            counts[side].append(count)
            print(f"  seed {seed} {side}: {count['full']} full, {count['short']} short, {count['duplicate']} duplicate")
    table = consensus([events for side_runs in runs.values() for events in side_runs])
    losses = np.asarray(list(table.values()))
    ref = losses.max(axis=0) + 0.1 * np.maximum(losses.max(axis=0) - losses.min(axis=0), 1e-9)
    print(
        f"\n{len(table)} distinct points measured in full by any side; budget {budget:.0f} s per run, {seeds} seed(s); "
        "seconds since the run began (setup included), median [min-max] over seeds\n"
    )
    print(
        "| side | to 90% HV | to 95% HV | to 99% HV | HV at 25% / 50% / 100% of the budget | full | distinct "
        "| short stops | dupes |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    to_95: dict[str, list[float | None]] = {}
    for side in sides:
        label = SIDES[side]
        goals = {g: [time_to(r, table, ref, g) for r in runs[side]] for g in (0.9, 0.95, 0.99)}
        at = [statistics.median(share_at(r, table, ref, budget * f) for r in runs[side]) for f in (0.25, 0.5, 1.0)]
        med = {k: statistics.median(c[k] for c in counts[side]) for k in ("full", "short", "duplicate")}
        print(
            f"| {label} | {_fmt(goals[0.9])} | {_fmt(goals[0.95])} | {_fmt(goals[0.99])} | "
            f"{' / '.join(f'{100 * a:.1f}%' for a in at)} | {med['full']:.0f} | "
            f"{statistics.median(len({e[1] for e in r}) for r in runs[side]):.0f} | {med['short']:.0f} | "
            f"{med['duplicate']:.0f} |"
        )
        to_95[side] = goals[0.95]
    for side in (s for s in sides if s != "plain"):
        print(ratio_line(to_95["plain"], to_95[side], budget, SIDES[side]))
    return to_95
