"""Serving wins: naive PyTorch vs the best layout lepton-tune's search finds vs ONNX Runtime alone.

For torchvision resnet18 and mobilenet_v3_small at 224x224 (untrained weights, random images: the
serving cost of a classifier does not depend on what it learned), measured side by side in one
run on this machine:

- **naive**: plain PyTorch in the calling process, default threads (= usable cores), batch 1,
  fp32, one request at a time; what a user gets from ``model(x)``.
- **lepton-tune**: a real ``run_search`` over the serving layout (K shards, threads, pinning,
  batching, runtime where available) at **fp32 only**, so accuracy is equal by construction
  (the engine returns the model's own outputs, tested to 1e-5); the best-throughput feasible
  trial is reported with its p95.
- **onnxruntime**: the same model exported to ONNX, one ``InferenceSession`` in the calling
  process, intra-op threads tuned by hand over {1, cores} and batch over {1, 8}; the best is kept.
- **FLOP/s**: achieved FLOP/s of lepton-tune's best (model FLOPs x images/s) as a fraction of
  this machine's measured peak fp32 matmul FLOP/s on all usable cores.

Latency/throughput follow DESIGN.md: warm-up, then R windows; medians over windows, spread shown.

Usage: ``python benchmarks/serving.py [--quick] [--models resnet18,mobilenet_v3_small] [--trials N]``
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
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


def naive(name: str, x: torch.Tensor, args: argparse.Namespace) -> dict[str, float]:
    torch.set_num_threads(host_facts().cores)
    model = build_model(name, num_classes=1000, image_shape=(3, 224, 224)).eval()

    def one() -> int:
        with torch.inference_mode():
            model(x[:1])
        return 1

    return windows(one, requests=args.requests, repeats=args.repeats, warmup=5)


def onnxruntime_alone(name: str, x: torch.Tensor, args: argparse.Namespace) -> dict[str, Any] | None:
    try:
        import onnxruntime as ort
    except ImportError:
        return None
    model = build_model(name, num_classes=1000, image_shape=(3, 224, 224)).eval()
    buffer = io.BytesIO()
    torch.onnx.export(model, (x[:1],), buffer, input_names=["x"], output_names=["y"],
                      dynamic_axes={"x": {0: "n"}, "y": {0: "n"}}, dynamo=False)
    best: dict[str, Any] | None = None
    for threads in sorted({1, host_facts().cores}):
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
        session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
        for batch in (1, 8):
            feed = {"x": x[:batch].numpy()}

            def one(feed: dict = feed, batch: int = batch) -> int:
                session.run(None, feed)
                return batch

            got = windows(one, requests=max(4, args.requests // batch), repeats=args.repeats, warmup=3)
            got.update(threads=threads, batch=batch)
            if best is None or got["throughput"] > best["throughput"]:
                best = got
    return best


def lepton_best(name: str, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    runtimes = [r for r in ("eager", "onnxruntime", "compile") if runtime_support(r, "fp32", "replica") is None]
    if args.quick:
        runtimes = [r for r in runtimes if r != "compile"]
    spec = load_study({
        "name": f"serving-{name}",
        "dataset": {"kind": "synthetic", "image_size": 224, "channels": 3, "num_classes": 1000, "samples": 64},
        "train": {"epochs": 0},
        "search_space": {"params": {
            "backbone": name, "precision": "fp32", "runtime": {"choices": runtimes},
            "shards": {"low": 1, "high": "auto"}, "threads_per_shard": {"low": 1, "high": "auto"},
            "pin": {"choices": [False, True]}, "batch_size": {"choices": [1, 8]},
            "max_wait_ms": {"choices": [0.0, 5.0]}, "pool_slots": 32},
            "constraints": ["shards * threads_per_shard <= cores"]},
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
    return {"throughput": best.user_attrs["metrics"]["throughput"], "p95": single_request_p95(point, args),
            "spread": best.user_attrs["spread"]["throughput"], "trials": len(study.trials),
            "layout": f"{point['runtime']} K={point['shards']} thr={point['threads_per_shard']} "
                      f"pin={point['pin']} batch={point['batch_size']} wait={point['max_wait_ms']}"}


def single_request_p95(point: dict[str, Any], args: argparse.Namespace) -> float:
    """p95 of the chosen layout with one request in flight, comparable to the naive call."""
    from lepton_tune.config import EngineConfig, ENGINE_FIELDS, ProtocolSpec
    from lepton_tune.engine import Engine
    from lepton_tune.measure import measure_engine
    from lepton_tune.config import PricesSpec

    config = EngineConfig(**{k: point[k] for k in ENGINE_FIELDS if k in point})
    model = build_model(point["backbone"], num_classes=1000, image_shape=(3, 224, 224)).eval()
    if config.runtime == "onnxruntime":  # the same exported graph the trial served (from the model cache)
        from lepton_tune.engine import OnnxModule
        from lepton_tune.models import export_onnx

        art = export_onnx(model, (3, 224, 224), precision="fp32")
        model = OnnxModule.from_file(art.path, output_shape=art.output_shape, precision="fp32")
    pool = torch.randn(16, 3, 224, 224).numpy()
    protocol = ProtocolSpec(warmup=5, requests=max(10, args.requests // 2), repeats=args.repeats, concurrency=1,
                            probe_requests=0)
    with Engine(model, config, input_shape=(3, 224, 224)) as engine:
        got = measure_engine(engine, pool, protocol, cores_used=config.cores_used, prices=PricesSpec())
    return got.metrics["latency_p95_ms"]


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
    args = parser.parse_args()
    args.trials = args.trials or (12 if args.quick else 24)
    args.requests = args.requests or (40 if args.quick else 120)
    names = (args.models or ("mobilenet_v3_small" if args.quick else "resnet18,mobilenet_v3_small")).split(",")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ.setdefault("LEPTON_TUNE_CACHE", tempfile.mkdtemp(prefix="lepton-bench-cache-"))
    x = torch.randn(8, 3, 224, 224)
    peak = peak_matmul_flops()
    print(f"# serving benchmark ({'quick' if args.quick else 'full'}), {time.strftime('%Y-%m-%d %H:%M')}, "
          f"{host_facts().cores} cores, peak fp32 matmul {peak / 1e9:.0f} GFLOP/s")
    print("| model | naive img/s (p95 ms) | lepton-tune best img/s (p95 ms) [layout] | vs naive: throughput x, p95 x "
          "| ORT tuned img/s [threads, batch] | lepton / ORT | FLOP/s of peak |")
    print("|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory(prefix="lepton-bench-serving-") as tmp:
        for name in names:
            base = naive(name, x, args)
            best = lepton_best(name, args, Path(tmp))
            ort_best = onnxruntime_alone(name, x, args)
            flops = model_profile(build_model(name, num_classes=1000, image_shape=(3, 224, 224)), (3, 224, 224))["flops"]
            ort_text = (f"{ort_best['throughput']:.1f} [{ort_best['threads']}, {ort_best['batch']}]" if ort_best else "not installed")
            ratio = f"{best['throughput'] / ort_best['throughput']:.2f}x" if ort_best else "-"
            print(f"| {name} | {base['throughput']:.1f} ({base['p95']:.1f}) | {best['throughput']:.1f} ({best['p95']:.1f}) "
                  f"[{best['layout']}] | {best['throughput'] / base['throughput']:.2f}x, {base['p95'] / best['p95']:.2f}x "
                  f"| {ort_text} | {ratio} | {100 * flops * best['throughput'] / peak:.1f}% |", flush=True)
    print("\nthroughput: lepton-tune under a closed loop of 16 requests in flight, naive and ORT one call at a time "
          "(their whole capacity); p95: every column with one request in flight.")
    print("lepton-tune rows are fp32 (accuracy equal to the naive model's by construction); search budget "
          f"{args.trials} trials per model incl. the naive-layout baseline trial.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
