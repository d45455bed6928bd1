"""Serving wins: naive PyTorch vs the best layout lepton-tune's search finds vs ONNX Runtime alone.

For torchvision resnet18 and mobilenet_v3_small at 224x224 (untrained weights, random images: the
serving cost of a classifier does not depend on what it learned), measured side by side in one
run on this machine:

- **naive**: plain PyTorch in the calling process, default threads (= usable cores), batch 1,
  fp32, one request at a time; what a user gets from ``model(x)``.
- **lepton-tune**: a real ``run_search`` over the serving layout (K shards, process or thread
  isolation, threads, pinning, batching, runtime where available) at **fp32 only**, so accuracy is equal by construction
  (the engine returns the model's own outputs, tested to 1e-5); the best-throughput feasible
  trial is reported with its p95.
- **ORT serving the same requests**: the same model exported to ONNX, one ``InferenceSession`` in
  the calling process shared by the same 16 client threads that load lepton-tune (each calls
  ``session.run`` on its one image; ORT releases the GIL), intra-op threads tuned by hand over
  {1, cores}. This is ONNX Runtime alone doing lepton-tune's job.
- **ORT on pre-formed batches**: the same session called one batch at a time, threads {1, cores}
  x batch {1, 8, 32} tuned by hand: ORT's offline capacity when the caller already holds a batch
  (no request is queued, batched or answered one by one). Shown for disclosure; it is not the same
  workload.
- **FLOP/s**: achieved FLOP/s of lepton-tune's best (model FLOPs x images/s) as a fraction of
  this machine's measured peak fp32 matmul FLOP/s on all usable cores.

The search picks the layout; then a **head-to-head** phase measures every contender again,
interleaved (naive, lepton-tune, ORT serving, ORT batches, naive, ...) in ``--rounds`` rounds of
equal-length windows, so that the shared machine's drift hits all of them alike. Throughput
ratios are ratios of those medians; the spread (max - min over rounds) is printed beside each.
Latency follows docs/architecture.md (definitions): warm-up, then R windows, medians over windows.

Usage: ``python benchmarks/serving.py [--quick] [--models resnet18,mobilenet_v3_small] [--trials N]``
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import optuna  # noqa: E402
import torch  # noqa: E402

from lepton_tune.config import host_facts, load_study  # noqa: E402
from lepton_tune.engine import runtime_support  # noqa: E402
from lepton_tune.models import build_model, model_profile  # noqa: E402
from lepton_tune.tuning import SearchOptions, run_search  # noqa: E402


CLIENTS = 16  # requests in flight, for lepton-tune and for ORT serving the same requests


def timed_window(run_one: Any, seconds: float) -> float:
    """Images per second of ``run_one()`` (one call, returns its image count) called for ``seconds``."""
    images, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        images += run_one()
    return images / (time.perf_counter() - start)


def windows(run_one: Any, *, requests: int, repeats: int, warmup: int) -> dict[str, float]:
    """Call ``run_one()`` (one request) sequentially; p95 and img/s medians over windows."""
    for _ in range(warmup):
        run_one()
    p95s, rates = [], []
    for _ in range(repeats):
        lat = []
        start = time.perf_counter()
        for _ in range(requests):
            t = time.perf_counter()
            images = run_one()
            lat.append((time.perf_counter() - t) * 1000)
        rates.append(requests * images / (time.perf_counter() - start))
        p95s.append(float(np.percentile(lat, 95)))
    return {"throughput": statistics.median(rates), "p95": statistics.median(p95s),
            "spread": max(rates) - min(rates)}


def naive_call(name: str, x: torch.Tensor) -> Any:
    """``model(x)`` at batch 1 in this process with default threads (= usable cores)."""
    torch.set_num_threads(host_facts().cores)
    model = build_model(name, num_classes=1000, image_shape=(3, 224, 224)).eval()

    def one() -> int:
        with torch.inference_mode():
            model(x[:1])
        return 1

    return one


def _ort_sessions(name: str, x: torch.Tensor) -> dict[int, Any] | None:
    """One ONNX Runtime session per thread count {1, cores} over the model exported the usual way."""
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    model = build_model(name, num_classes=1000, image_shape=(3, 224, 224)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buffer, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    sessions = {}
    for threads in sorted({1, host_facts().cores}):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        sessions[threads] = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    return sessions


def _best(candidates: list[tuple[dict[str, Any], Any]], seconds: float) -> tuple[dict[str, Any], Any]:
    """The candidate window (a call returning img/s) with the highest median over 3 short tries."""
    scored = []
    for setting, window in candidates:
        window(seconds / 4)  # warm-up
        scored.append((statistics.median(window(seconds / 2) for _ in range(3)), setting, window))
    rate, setting, window = max(scored, key=lambda item: item[0])
    return {**setting, "throughput": rate}, window


def ort_batches(sessions: dict[int, Any], x: torch.Tensor, seconds: float) -> tuple[dict[str, Any], Any]:
    """ORT on pre-formed batches, one call at a time: threads x batch {1, 8, 32} tuned by hand."""
    candidates = []
    for threads, session in sessions.items():
        for batch in (1, 8, 32):
            feed = {"x": x[:batch].numpy()}

            def one(session: Any = session, feed: dict = feed, batch: int = batch) -> int:
                session.run(None, feed)
                return batch

            candidates.append(({"threads": threads, "batch": batch},
                               lambda s, one=one: timed_window(one, s)))
    return _best(candidates, seconds)


def ort_clients(session: Any, x: torch.Tensor, concurrency: int, seconds: float) -> float:
    """img/s of ``concurrency`` client threads each calling ``session.run`` on one image at a time."""
    images = [{"x": x[i % len(x)][None].numpy()} for i in range(concurrency)]
    counts = [0] * concurrency
    stop = time.perf_counter() + seconds

    def client(i: int) -> None:
        while time.perf_counter() < stop:
            session.run(None, images[i])
            counts[i] += 1

    started = time.perf_counter()
    threads = [threading.Thread(target=client, args=(i,)) for i in range(concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sum(counts) / (time.perf_counter() - started)


def ort_serving(sessions: dict[int, Any], x: torch.Tensor, seconds: float) -> tuple[dict[str, Any], Any]:
    """ORT serving the same requests as lepton-tune (16 single-image clients), threads tuned by hand."""
    candidates = [({"threads": threads}, lambda s, session=session: ort_clients(session, x, CLIENTS, s))
                  for threads, session in sessions.items()]
    return _best(candidates, seconds)


def lepton_search(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """A real search over the serving layout at fp32; the best-throughput feasible trial."""
    runtimes = [r for r in ("eager", "onnxruntime", "compile") if runtime_support(r, "fp32", "replica") is None]
    if args.quick:
        runtimes = [r for r in runtimes if r != "compile"]
    spec = load_study({
        "name": f"serving-{name}",
        "dataset": {"kind": "synthetic", "image_size": 224, "channels": 3, "num_classes": 1000, "samples": 64},
        "train": {"epochs": 0},
        "search_space": {"params": {
            "backbone": name, "precision": "fp32", "runtime": {"choices": runtimes},
            "isolation": {"choices": ["process", "thread"]}, "shards": {"low": 1, "high": "auto"}, "threads_per_shard": {"low": 1, "high": "auto"},
            "pin": {"choices": [False, True]}, "batch_size": {"choices": [1, 8]},
            "max_wait_ms": {"choices": [0.0, 5.0]}, "pool_slots": 32},
            "constraints": ["shards * threads_per_shard <= cores",
                            'isolation == "process" or runtime == "onnxruntime"']},
        "objectives": ["throughput", "latency_p95_ms"],
        "sampler": {"name": "tpe", "seed": 0, "n_startup_trials": max(4, args.trials // 2)},
        "n_trials": args.trials, "baseline": True, "tracking": {"enabled": False},
        "protocol": {"warmup": 8, "requests": args.requests, "repeats": args.repeats, "concurrency": 16,
                     "probe_requests": 0},
    })
    study = run_search(spec, SearchOptions(run_dir=workdir / name))
    done = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    best = max(done, key=lambda t: t.user_attrs["metrics"]["throughput"])
    point = best.user_attrs["point"]
    return {"point": point, "search_throughput": best.user_attrs["metrics"]["throughput"], "trials": len(study.trials),
            "layout": f"{point['runtime']} {point['isolation']} K={point['shards']} thr={point['threads_per_shard']} "
                      f"pin={point['pin']} batch={point['batch_size']} wait={point['max_wait_ms']}"}


def serving_model(point: dict[str, Any]) -> torch.nn.Module:
    """The module the trial served: the backbone, or its exported graph (from the model cache) for onnxruntime."""
    model = build_model(point["backbone"], num_classes=1000, image_shape=(3, 224, 224)).eval()
    if point["runtime"] != "onnxruntime":
        return model
    from lepton_tune.engine import OnnxModule
    from lepton_tune.models import export_onnx

    art = export_onnx(model, (3, 224, 224), precision="fp32")
    return OnnxModule.from_file(art.path, output_shape=art.output_shape, precision="fp32")


def single_request_p95(engine: Any, args: argparse.Namespace) -> float:
    """p95 of the chosen layout with one request in flight, comparable to the naive call."""
    from lepton_tune.config import PricesSpec, ProtocolSpec
    from lepton_tune.measure import measure_engine

    pool = torch.randn(16, 3, 224, 224).numpy()
    protocol = ProtocolSpec(warmup=5, requests=max(10, args.requests // 2), repeats=args.repeats, concurrency=1,
                            probe_requests=0)
    got = measure_engine(engine, pool, protocol, cores_used=engine.config.cores_used, prices=PricesSpec())
    return got.metrics["latency_p95_ms"]


def head_to_head(contenders: dict[str, Any], rounds: int) -> dict[str, dict[str, float]]:
    """Each contender's window (a call returning img/s) run in turn, ``rounds`` times; median and spread."""
    rates: dict[str, list[float]] = {key: [] for key in contenders}
    for _ in range(rounds):
        for key, window in contenders.items():
            rates[key].append(window())
    return {key: {"median": statistics.median(got), "spread": max(got) - min(got)} for key, got in rates.items()}


def compare(name: str, x: torch.Tensor, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    """Search, then the interleaved head-to-head of naive, lepton-tune's best, and tuned ORT."""
    from lepton_tune.config import ENGINE_FIELDS, EngineConfig
    from lepton_tune.engine import Engine
    from lepton_tune.measure import closed_loop

    found = lepton_search(name, args, workdir)
    naive = naive_call(name, x)
    naive_p95 = windows(naive, requests=args.requests, repeats=args.repeats, warmup=5)["p95"]
    sessions = _ort_sessions(name, x)
    ort = (ort_serving(sessions, x, args.seconds), ort_batches(sessions, x, args.seconds)) if sessions else None
    config = EngineConfig(**{k: found["point"][k] for k in ENGINE_FIELDS if k in found["point"]})
    pool = torch.randn(64, 3, 224, 224).numpy()
    requests = max(64, int(found["search_throughput"] * args.seconds))
    with Engine(serving_model(found["point"]), config, input_shape=(3, 224, 224)) as engine:
        closed_loop(engine, pool, requests=64, concurrency=CLIENTS, timeout=120)  # warm-up
        contenders = {
            "naive": lambda: timed_window(naive, args.seconds),
            "lepton": lambda: closed_loop(engine, pool, requests=requests, concurrency=CLIENTS,
                                          timeout=120).throughput,
        }
        if ort is not None:
            contenders["ort_serving"] = lambda: ort[0][1](args.seconds)
            contenders["ort_batches"] = lambda: ort[1][1](args.seconds)
        result = head_to_head(contenders, args.rounds)
        lepton_p95 = single_request_p95(engine, args)
    settings = {"ort_serving_setting": ort[0][0], "ort_batches_setting": ort[1][0]} if ort else {}
    return {**found, **result, "naive_p95": naive_p95, "lepton_p95": lepton_p95, **settings}


def peak_matmul_flops() -> float:
    torch.set_num_threads(host_facts().cores)
    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    for _ in range(3):
        a @ b
    rates = []
    for _ in range(5):
        t = time.perf_counter()
        for _ in range(5):
            a @ b
        rates.append(5 * 2 * 2048**3 / (time.perf_counter() - t))
    return max(rates)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="mobilenet_v3_small only, 8 trials, short windows")
    parser.add_argument("--models", default=None)
    parser.add_argument("--trials", type=int, default=None)
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=None, help="head-to-head rounds (default 5, quick 3)")
    parser.add_argument("--seconds", type=float, default=None, help="head-to-head window length (default 3 s)")
    args = parser.parse_args()
    args.trials = args.trials or (12 if args.quick else 24)
    args.requests = args.requests or (40 if args.quick else 120)
    args.rounds = args.rounds or (3 if args.quick else 5)
    args.seconds = args.seconds or (2.0 if args.quick else 3.0)
    names = (args.models or ("mobilenet_v3_small" if args.quick else "resnet18,mobilenet_v3_small")).split(",")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("LEPTON_TUNE_CACHE", tempfile.mkdtemp(prefix="lepton-bench-cache-"))
    x = torch.randn(32, 3, 224, 224)
    peak = peak_matmul_flops()
    print(f"# serving benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{host_facts().cores} cores, peak fp32 matmul {peak / 1e9:.0f} GFLOP/s, {args.rounds} rounds x "
          f"{args.seconds:g} s windows")
    print("| model | naive img/s ±spread (p95 ms) | lepton-tune best img/s ±spread (p95 ms) [layout] "
          "| vs naive: throughput x, p95 x | ORT serving the same requests, img/s ±spread [threads] | lepton / ORT "
          "| ORT on pre-formed batches, img/s ±spread [threads, batch] | lepton / ORT batches | FLOP/s of peak |")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lepton-bench-serving-") as tmp:
        for name in names:
            got = compare(name, x, args, Path(tmp))
            base, best = got["naive"], got["lepton"]
            flops = model_profile(build_model(name, num_classes=1000, image_shape=(3, 224, 224)), (3, 224, 224))["flops"]
            cells = ["not installed", "-", "not installed", "-"]
            if "ort_serving" in got:
                serving, batches = got["ort_serving"], got["ort_batches"]
                cells = [f"{serving['median']:.1f} ±{serving['spread']:.1f} [{got['ort_serving_setting']['threads']}]",
                         f"{best['median'] / serving['median']:.2f}x",
                         f"{batches['median']:.1f} ±{batches['spread']:.1f} [{got['ort_batches_setting']['threads']}, "
                         f"{got['ort_batches_setting']['batch']}]",
                         f"{best['median'] / batches['median']:.2f}x"]
            print(f"| {name} | {base['median']:.1f} ±{base['spread']:.1f} ({got['naive_p95']:.1f}) "
                  f"| {best['median']:.1f} ±{best['spread']:.1f} ({got['lepton_p95']:.1f}) [{got['layout']}] "
                  f"| {best['median'] / base['median']:.2f}x, {got['naive_p95'] / got['lepton_p95']:.2f}x "
                  f"| {' | '.join(cells)} | {100 * flops * best['median'] / peak:.1f}% |", flush=True)
    print(f"\nthroughput: medians of {args.rounds} interleaved head-to-head rounds of {args.seconds:g} s windows. "
          f"lepton-tune and 'ORT serving' answer the same load: {CLIENTS} client threads, one image per request, "
          "a new request as soon as one is answered. 'ORT on pre-formed batches' is ORT's offline capacity: the "
          "caller already holds the batch, so no request is queued, batched or answered one by one. naive: one "
          "image at a time. p95: every column with one request in flight.")
    print("lepton-tune rows are fp32 (accuracy equal to the naive model's by construction); search budget "
          f"{args.trials} trials per model incl. the naive-layout baseline trial.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
