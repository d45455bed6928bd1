"""The cost of the tool itself: where a trial's wall time goes, and MLflow logging time per trial.

A real study (digits at 16x16, small_cnn trained once, 1 epoch; serving layout searched) runs with
the embedded SQLite storage and MLflow tracking on, exactly as ``lepton-tune search`` wires them.
Every trial's wall time (from one trial's end to the next's, so storage, sampler and callbacks are
in it) is split into:

- **measurement**: the protocol's own windows and the accuracy pass (what any tool has to spend to
  know the numbers);
- **model conversion**: quantization or export of a (backbone, precision, runtime), once per model
  per search (cached): model work like training, shown apart and not counted as the tool's cost;
- **engine start**: the shards starting with the layout (a cost of the layout, recorded per trial);
- **trial process**: the isolated trial process (start, model hand-over, result back) and the host
  lock, i.e. evaluate_point's time minus the stages above and any training/conversion;
- **MLflow logging**: the tracking callback (child run, params, metrics, tags, trial.json);
- **storage + sampler**: the rest (Optuna ask/tell on SQLite, suggestion, dedupe, bookkeeping).

The first trial trains the model (a one-time, cached cost) and is reported on its own; duplicate
points (answered from the study without running) are counted, not timed.

``--warm both`` (the default) runs the study twice, cold (``protocol.warm: false``: each trial's
process starts its own forkserver for the shards) and warm (each trial forked from one zygote per
search, measure/_zygote.py), each with a fresh model cache, and prints both tables. The headline
is the tool's own cost *including* engine start as a share of a median trial: per trial, wall less
measurement less conversion; its median over the median wall less conversion (``tool_share``).

``--study studies/quickstart.yaml`` measures the quickstart study itself (its space, protocol,
32x32 images and full accuracy pass) instead of the tiny proxy above; its baselines and the trials
that trained are reported apart, and the user's model cache is used (run the quickstart once
first, so that training is not in the rounds). ``--rounds N`` repeats the study N times (cold and
warm interleaved round by round) and prints the median share per mode with its 95% bootstrap
interval over rounds.

Usage: ``python benchmarks/overhead.py [--quick] [--trials N] [--warm on|off|both] [--study YAML] [--rounds N]``
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import optuna

from lepton_tune.config import load_study
from lepton_tune.tracking import MLflowTracker, default_tracking_uri, ensure_tracking_store
from lepton_tune.tuning import SearchOptions, open_study, redact_url, run_search


class Stamp:
    """Records when each trial's callbacks finished (the last callback): the trial boundary."""

    def __init__(self) -> None:
        self.at: dict[int, float] = {}
        self.start = time.perf_counter()

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        self.at[trial.number] = time.perf_counter()


class TimedTracker:
    """The MLflow tracker, timed per call."""

    def __init__(self, tracker: MLflowTracker) -> None:
        self.tracker, self.seconds = tracker, {}

    def __call__(self, study: optuna.Study, trial: optuna.trial.FrozenTrial) -> None:
        started = time.perf_counter()
        self.tracker(study, trial)
        self.seconds[trial.number] = time.perf_counter() - started


def spec_for(trials: int, warm: bool = True, study: Path | None = None) -> Any:
    if study is not None:
        spec = load_study(study)
        protocol = spec.protocol.model_copy(update={"warm": warm})
        return spec.model_copy(update={"n_trials": trials, "timeout": None, "protocol": protocol})
    return load_study(
        {
            "name": "overhead",
            "dataset": {"kind": "digits", "image_size": 16, "channels": 3, "split_seed": 0},
            "train": {"epochs": 1, "batch_size": 64, "seed": 0},
            "search_space": {
                "params": {
                    "backbone": "small_cnn",
                    "precision": "fp32",
                    "shards": {"low": 1, "high": 2},
                    "threads_per_shard": 1,
                    "batch_size": {"choices": [1, 2, 4, 8, 16]},
                    "max_wait_ms": {"choices": [0.0, 0.5, 1.0, 2.0]},
                    "pool_slots": 16,
                }
            },
            "objectives": ["accuracy", "latency_p95_ms", "memory_mb"],
            "sampler": {"name": "random", "seed": 0},
            "baseline": False,
            "n_trials": trials,
            "protocol": {
                "warmup": 10,
                "requests": 200,
                "repeats": 3,
                "concurrency": 4,
                "probe_requests": 0,
                "accuracy_samples": 300,
                "warm": warm,
            },
        }
    )


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):7.3f} [{min(values):.3f}-{max(values):.3f}]"


def run_mode(trials: int, warm: bool, study_file: Path | None = None) -> tuple[dict[str, list[float]], dict[str, Any]]:
    """One study, cold or warm, in a fresh temporary run dir (and, for the proxy, model cache); rows per trial part."""
    import os

    with tempfile.TemporaryDirectory(prefix="lepton-bench-overhead-") as tmp:
        if study_file is None:
            os.environ["LEPTON_TUNE_CACHE"] = str(Path(tmp) / "cache")  # a fresh cache: the first trial trains
        run_dir = Path(tmp) / "runs"
        spec = spec_for(trials, warm, study_file)
        options = SearchOptions(run_dir=run_dir)
        study, _, fingerprint = open_study(spec, options)
        uri = default_tracking_uri(run_dir)
        ensure_tracking_store(uri, study.study_name, str((run_dir / "mlartifacts").resolve()))
        tracker = TimedTracker(MLflowTracker(uri, study.study_name, run_dir=run_dir, redact=redact_url))
        began = time.perf_counter()
        tracker.tracker.start(study)
        start_s = time.perf_counter() - began
        stamp = Stamp()
        options.callbacks = [tracker, stamp]
        run_search(spec, options, study=study, fingerprint=fingerprint)
        began = time.perf_counter()
        tracker.tracker.finish(study)
        finish_s = time.perf_counter() - began
        wall_total = time.perf_counter() - stamp.start

    rows: dict[str, list[float]] = {
        k: []
        for k in (
            "wall",
            "measurement",
            "model conversion",
            "engine start",
            "trial process",
            "MLflow logging",
            "storage + sampler",
        )
    }
    previous, duplicates, baselines, first = stamp.start, 0, 0, None
    for trial in sorted(study.trials, key=lambda t: t.number):
        end = stamp.at.get(trial.number)
        if end is None:
            continue
        wall, previous = end - previous, end
        stages = trial.user_attrs.get("stage_seconds")
        if trial.user_attrs.get("baseline"):  # once per backbone, like training: not a trial's cost
            baselines += 1
            continue
        if trial.user_attrs.get("duplicate_of") is not None or not stages:
            duplicates += 1
            continue
        if stages.get("train", 0.0) > 0.5:  # a trial that trained: reported apart
            first = (wall, stages["train"])
            continue
        measurement = stages.get("measure", 0.0) + stages.get("accuracy", 0.0)
        conversion = stages.get("convert", 0.0) + stages.get("export", 0.0)
        inside = stages["total"] - stages.get("train", 0.0) - conversion
        logging_s = tracker.seconds.get(trial.number, 0.0)
        rows["wall"].append(wall)
        rows["measurement"].append(measurement)
        rows["model conversion"].append(conversion)
        rows["engine start"].append(stages.get("start", 0.0))
        rows["trial process"].append(inside - measurement - stages.get("start", 0.0))
        rows["MLflow logging"].append(logging_s)
        rows["storage + sampler"].append(wall - stages["total"] - logging_s)
    return rows, {
        "duplicates": duplicates,
        "baselines": baselines,
        "first": first,
        "wall_total": wall_total,
        "start_s": start_s,
        "finish_s": finish_s,
    }


def report(rows: dict[str, list[float]], info: dict[str, Any], *, label: str, trials: int) -> None:
    timed = len(rows["wall"])
    print(
        f"\n# tool overhead benchmark ({label}), {time.strftime('%Y-%m-%d %H:%M')}: {trials} trials, {timed} timed, "
        f"{info['duplicates']} duplicate(s) answered without running, {info['baselines']} baseline(s) apart, "
        f"{info['wall_total']:.0f} s in all"
    )
    if info["first"]:
        print(
            f"first trial (trains the model once, cached after): {info['first'][0]:.1f} s wall, "
            f"of which training {info['first'][1]:.1f} s"
        )
    print("\n| part of a trial | seconds, median [min-max] | share of the summed wall time |")
    print("|---|---|---|")
    total_wall = sum(rows["wall"])
    for name, values in rows.items():
        share = "100%" if name == "wall" else f"{100 * sum(values) / total_wall:.1f}%"
        print(f"| {name} | {spread(values)} | {share} |")
    overhead = total_wall - sum(rows["measurement"]) - sum(rows["model conversion"])
    tool = sum(rows["trial process"]) + sum(rows["MLflow logging"]) + sum(rows["storage + sampler"])
    print(
        f"\nthe tool's own cost (trial process + MLflow logging + storage + sampler): {100 * tool / total_wall:.1f}% "
        f"of trial wall time; with engine start: {100 * overhead / total_wall:.1f}%"
    )
    print(
        f"the tool's own cost including engine start, as a share of a median trial: {100 * tool_share(rows):.1f}% "
        f"(median trial {statistics.median(rows['wall']):.3f} s, of which measurement "
        f"{statistics.median(rows['measurement']):.3f} s; model conversion, once per model, apart; target <= 15%)"
    )
    print(
        f"MLflow logging per trial: median {1000 * statistics.median(rows['MLflow logging']):.0f} ms; once per "
        f"study: parent run {1000 * info['start_s']:.0f} ms, closing (pareto tags, HV, report) "
        f"{1000 * info['finish_s']:.0f} ms"
    )


def tool_share(rows: dict[str, list[float]]) -> float:
    """The tool's own cost including engine start, as a share of a median trial.

    Per trial, the tool's cost is its wall time less the measurement and less any model conversion
    (quantization, export: once per model and cached, work any tool would do, like training); the
    share is the median of that cost over the median trial wall time without conversion.
    """
    walls = [w - c for w, c in zip(rows["wall"], rows["model conversion"], strict=True)]
    tools = [w - m for w, m in zip(walls, rows["measurement"], strict=True)]
    return statistics.median(tools) / statistics.median(walls)


def main() -> int:
    from _stats import bootstrap_median

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="8 trials")
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--warm", choices=("on", "off", "both"), default="both")
    parser.add_argument("--study", type=Path, default=None, help="measure this study (e.g. studies/quickstart.yaml)")
    parser.add_argument("--rounds", type=int, default=1, help="repeat, modes interleaved; bootstrap over rounds")
    args = parser.parse_args()
    trials = args.trials or (8 if args.quick else 24)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    modes = {"on": [True], "off": [False], "both": [False, True]}[args.warm]
    shares: dict[bool, list[float]] = {warm: [] for warm in modes}
    for round_ in range(args.rounds):
        for warm in modes:
            rows, info = run_mode(trials, warm, args.study)
            shares[warm].append(tool_share(rows))
            label = f"{args.study or ('quick' if args.quick else 'full')}, {'warm' if warm else 'cold'} trials"
            report(rows, info, label=f"{label}, round {round_ + 1}/{args.rounds}", trials=trials)
    if args.rounds > 1:
        print(f"\n## over {args.rounds} rounds: the tool's cost incl. engine start, share of a median trial")
        for warm, values in shares.items():
            iv = bootstrap_median(values)
            print(
                f"{'warm' if warm else 'cold'}: {100 * iv.median:.1f}% [95% CI {100 * iv.low:.1f}-{100 * iv.high:.1f}%] "
                f"(rounds: {', '.join(f'{100 * v:.1f}' for v in values)}); target <= 15% by the upper bound: "
                f"{'MET' if iv.high <= 0.15 else 'MISSED'}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
