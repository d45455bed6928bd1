"""Engine benchmark: overhead vs in-process, the K x threads x batch grid, pipeline vs replica,
share_weights memory. Everything is measured side by side in one run and printed as ratios.

    python benchmarks/engine.py            # full: torchvision models at 224x224 (~10 minutes)
    python benchmarks/engine.py --quick    # smoke run: 64x64 inputs, short windows, 1 thread (~1 minute)

Latency is submit -> result per request under a closed loop with ``c`` requests in flight
(c threads, each submitting its next image once the previous one returned). Memory is the peak of
the summed PSS of the parent and every shard, sampled at 20 Hz. Run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import statistics
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this checkout's lepton_tune first

from lepton_tune.config import EngineConfig, usable_cores
from lepton_tune.engine import Engine
from lepton_tune.measure._inprocess import FORMS

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _sides import Side
from _stats import describe

DEFAULT_THREADS = torch.get_num_threads()  # torch's default for this host, read before anything changes it


@dataclass
class Result:
    throughput: float
    p50_ms: float
    p95_ms: float
    pss_mib: float = float("nan")


def pss_mib(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total / 1024


class PeakPss:
    def __init__(self, pids) -> None:
        self.pids, self.peak, self._stop = pids, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.peak = max(self.peak, pss_mib(self.pids()))

    def __enter__(self) -> PeakPss:
        self.peak = pss_mib(self.pids())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def closed_loop(
    eng, images: np.ndarray, *, concurrency: int, seconds: float, warmup: int, memory: bool = True
) -> Result:
    """``concurrency`` client threads for ``seconds``; PSS sampled at 20 Hz only when ``memory`` (it costs CPU)."""
    for i in range(warmup):
        eng.submit(images[i % len(images)]).result(timeout=120)
    latencies: list[float] = []
    lock = threading.Lock()
    stop_at = time.perf_counter() + seconds

    def worker(offset: int) -> None:
        mine, i = [], offset
        while time.perf_counter() < stop_at:
            started = time.perf_counter()
            eng.submit(images[i % len(images)]).result(timeout=120)
            mine.append(time.perf_counter() - started)
            i += concurrency
        with lock:
            latencies.extend(mine)

    with PeakPss(eng.pids) if memory else contextlib.nullcontext() as sampler:
        began = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    peak = sampler.peak if sampler is not None else float("nan")
    return Result(len(latencies) / elapsed, percentile(ms, 50), percentile(ms, 95), peak)


def in_process(model: torch.nn.Module, images: np.ndarray, *, threads: int, batch: int, seconds: float) -> Result:
    old = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        x = torch.from_numpy(images[:batch].copy())
        with torch.inference_mode():
            for _ in range(3):
                model(x)
            latencies, stop_at = [], time.perf_counter() + seconds
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                model(x)
                latencies.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(old)
    ms = [x * 1000 for x in latencies]
    return Result(batch * len(latencies) / sum(latencies), percentile(ms, 50), percentile(ms, 95))


def engine_run(model, images, config: EngineConfig, *, concurrency: int, seconds: float, warmup: int) -> Result:
    with Engine(model, config, input_shape=images.shape[1:]) as eng:
        return closed_loop(eng, images, concurrency=concurrency, seconds=seconds, warmup=warmup)


def build(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return getattr(torchvision.models, name)(weights=None).eval()


def row(label: str, r: Result, extra: str = "") -> str:
    mem = f"{r.pss_mib:8.0f}" if r.pss_mib == r.pss_mib else "       -"
    return f"| {label:<44} | {r.throughput:8.1f} | {r.p50_ms:8.2f} | {r.p95_ms:8.2f} | {mem} | {extra}"


HEADER = f"| {'layout':<44} | {'img/s':>8} | {'p50 ms':>8} | {'p95 ms':>8} | {'PSS MiB':>8} | note"


def _passthrough_onnx(size: int):
    """A model that does almost nothing with a 3 x size x size image, as an ONNX Runtime module."""
    import tempfile

    from lepton_tune.engine import OnnxModule

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(3, 10)).eval()
    path = Path(tempfile.mkdtemp()) / "passthrough.onnx"
    torch.onnx.export(
        net,
        (torch.zeros(1, 3, size, size),),
        str(path),
        input_names=["x"],
        output_names=["y"],
        dynamic_axes={"x": {0: "n"}, "y": {0: "n"}},
        dynamo=False,
    )
    return net, OnnxModule.from_file(path, output_shape=(10,), precision="fp32")


def overhead(args) -> None:
    print("\n## Per-request overhead, batch 1, c=1, p50 engine - p50 in-process (interleaved, median of rounds)")
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    small = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    print("| payload                     | isolation | runtime | in-process p50 us | engine p50 us | overhead us")
    rows = [("1x8x8 float32 (256 B)", "process", "eager", tiny, tiny, small)]
    if importlib.util.find_spec("onnxruntime") is not None:
        size = 224
        big = np.random.default_rng(0).random((16, 3, size, size), dtype=np.float32)
        net, onnx = _passthrough_onnx(size)
        rows += [
            ("3x224x224 float32 (588 KiB)", "process", "eager", net, net, big),
            ("3x224x224 float32 (588 KiB)", "process", "onnxruntime", onnx, onnx, big),
            ("3x224x224 float32 (588 KiB)", "thread", "onnxruntime", onnx, onnx, big),
        ]
    for payload, isolation, runtime, served, plain, images in rows:
        config = EngineConfig(isolation=isolation, runtime=runtime)
        base_p50, eng_p50 = [], []
        torch.set_num_threads(1)
        with Engine(served, config, input_shape=images.shape[1:]) as eng:
            for _ in range(max(3, args.rounds // 2)):
                base_p50.append(in_process(plain, images, threads=1, batch=1, seconds=args.seconds / 4).p50_ms)
                eng_p50.append(
                    closed_loop(eng, images, concurrency=1, seconds=args.seconds / 4, warmup=20, memory=False).p50_ms
                )
        b, e = statistics.median(base_p50) * 1000, statistics.median(eng_p50) * 1000
        print(
            f"| {payload:<27} | {isolation:<9} | {runtime:<7} | {b:17.0f} | {e:13.0f} | {e - b:8.0f} (target < 300 us)",
            flush=True,
        )
    torch.set_num_threads(DEFAULT_THREADS)


def merge(results: list[Result]) -> Result:
    return Result(
        statistics.fmean(r.throughput for r in results),
        statistics.median(r.p50_ms for r in results),
        statistics.median(r.p95_ms for r in results),
        max(r.pss_mib for r in results),
    )


def k1_parity(args, name: str, size: int, *, batch: int, concurrency: int) -> dict:
    """Engine K=1 with every core as its threads vs the model called in-process: interleaved rounds.

    Each side is a fresh process (benchmarks/_sides.py), as the baseline and each trial are in a
    study. Batch 1: the in-process side is the faster of its two plain forms in each round (one
    worker answering one request at a time, or every client calling the model), at ``concurrency``
    requests in flight. Batch 8: the in-process side runs pre-formed batches of 8 back to back and
    the engine's batcher gets ``concurrency`` (>= 8) requests in flight.
    """
    cores = len(usable_cores())
    options = dict(
        threads_per_shard=cores,
        batch_size=batch,
        max_wait_ms=2.0 if batch > 1 else 0.0,
        pool_slots=max(16, 2 * concurrency),
    )
    ratios, base_tp, eng_tp, forms = [], [], [], []
    with Side("in-process", name, size, batch=batch) as plain, Side("engine", name, size, **options) as engine:
        for _ in range(args.rounds):
            if batch > 1:
                form, base = f"batches of {batch}", plain.window(form="batches", batch=batch, seconds=args.seconds)
            else:
                form, base = max(
                    ((f, plain.window(form=f, concurrency=concurrency, seconds=args.seconds / 2)) for f in FORMS),
                    key=lambda pair: pair[1],
                )
            eng = engine.window(concurrency=concurrency, seconds=args.seconds)
            ratios.append(eng / base)
            base_tp.append(base)
            eng_tp.append(eng)
            forms.append(form)
    print(
        f"| {name:<18} | {batch:>5} | {concurrency:>3} | {statistics.median(base_tp):9.1f} "
        f"({max(set(forms), key=forms.count)}) | {statistics.median(eng_tp):9.1f} | {describe(ratios, 0.95)}",
        flush=True,
    )
    return {"model": name, "batch": batch, "concurrency": concurrency, "ratios": ratios}


def k1_section(args, images: np.ndarray) -> None:
    cores = len(usable_cores())
    print(
        f"\n## Engine K=1 x {cores} threads (all cores) vs the same model in-process at torch's default "
        f"{DEFAULT_THREADS} threads; fp32, 3x{images.shape[-1]}x{images.shape[-1]} random images, closed loop, "
        f"{args.rounds} interleaved rounds of {args.seconds:g} s windows, each side in its own fresh process, "
        "no memory sampler in any window"
    )
    print("| model              | batch |   c | in-process img/s (form) | engine img/s | engine / in-process")
    for name in args.parity_models:
        for batch, concurrency in ((1, 1), (1, 4), (8, 16)):
            k1_parity(args, name, images.shape[-1], batch=batch, concurrency=concurrency)


def grid(args, name: str, images: np.ndarray) -> None:
    print(f"\n## {name}: grid K x threads x batch (closed loop, c = 2 x K x batch; max_wait_ms 2 when batch > 1)")
    model = build(name)
    cores = len(usable_cores())
    naive = in_process(model, images, threads=min(2, cores), batch=1, seconds=args.seconds)
    print(HEADER)
    print(row(f"in-process, {min(2, cores)} threads, batch 1 (naive)", naive))
    best = None
    for k in (1, 2):
        for threads in args.threads:
            for batch in (1, 8):
                c = 2 * k * batch
                config = EngineConfig(
                    shards=k,
                    threads_per_shard=threads,
                    batch_size=batch,
                    pool_slots=max(16, c),
                    max_wait_ms=2.0 if batch > 1 else 0.0,
                    oversubscribe=k * threads > cores,
                )
                r = engine_run(model, images, config, concurrency=c, seconds=args.seconds, warmup=2 * c)
                note = f"x{r.throughput / naive.throughput:.2f} vs naive" + (
                    " (oversubscribed)" if config.oversubscribe else ""
                )
                print(row(f"K={k} threads={threads} batch={batch} c={c}", r, note))
                if best is None or r.throughput > best[1].throughput:
                    best = (f"K={k} threads={threads} batch={batch}", r)
    assert best is not None
    print(
        f"best layout {best[0]}: {best[1].throughput / naive.throughput:.2f}x the naive in-process throughput "
        "(target >= 1.6x for mobilenet_v3_small)"
    )


def pipeline_vs_replica(args, name: str, images: np.ndarray) -> None:
    print(f"\n## {name}: pipeline K=2 vs replica K=2 (1 thread each, batch 1, c=4)")
    model = build(name)
    print(HEADER)
    for mode in ("replica", "pipeline"):
        r = engine_run(model, images, EngineConfig(shards=2, mode=mode), concurrency=4, seconds=args.seconds, warmup=8)
        print(row(f"{mode} K=2", r))


def share_weights(args, name: str, images: np.ndarray) -> None:
    print(f"\n## {name}: share_weights at K=2 (replica, 1 thread, batch 1, c=2): summed PSS")
    model = build(name)
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()]) / 2**20
    print(HEADER)
    peaks = {}
    for share in (False, True):
        r = engine_run(
            model, images, EngineConfig(shards=2, share_weights=share), concurrency=2, seconds=args.seconds, warmup=4
        )
        peaks[share] = r.pss_mib
        print(row(f"share_weights={share}", r))
    print(f"saving {peaks[False] - peaks[True]:.0f} MiB; one copy of the weights is {weights:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="64x64 inputs, 1.5 s windows, 1 thread per shard, mobilenet grid only"
    )
    parser.add_argument("--size", type=int, default=None, help="image side (default 224, 64 with --quick)")
    parser.add_argument("--seconds", type=float, default=None, help="measured window per layout")
    parser.add_argument("--rounds", type=int, default=None, help="interleaved rounds for the K=1 parity (default 7)")
    parser.add_argument(
        "--only", choices=["parity", "overhead", "agreement"], default=None, help="run one section only"
    )
    args = parser.parse_args()
    size = args.size or (64 if args.quick else 224)
    args.seconds = args.seconds or (1.5 if args.quick else 8.0)
    args.threads = [1] if args.quick else [1, 2]
    args.rounds = args.rounds or (3 if args.quick else 7)
    args.parity_models = ["mobilenet_v3_small"] if args.quick else ["resnet18", "mobilenet_v3_small"]
    images = np.random.default_rng(0).random((32, 3, size, size), dtype=np.float32)
    print(f"# engine benchmark{' (QUICK: small inputs, short windows, noisy)' if args.quick else ''}")
    print(f"torch {torch.__version__}, usable cores {usable_cores()}, input 3x{size}x{size}, window {args.seconds:g} s")
    if args.only == "parity":
        k1_section(args, images)
        return
    if args.only == "overhead":
        overhead(args)
        return
    if args.only == "agreement":
        from _agreement import agreement

        agreement(args)
        return
    overhead(args)
    k1_section(args, images)
    grid(args, "mobilenet_v3_small", images)
    if not args.quick:
        grid(args, "resnet18", images)
    pipeline_vs_replica(args, "resnet18", images)
    share_weights(args, "resnet18", images)


if __name__ == "__main__":
    main()
