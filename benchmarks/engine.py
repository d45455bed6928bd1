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

    def __enter__(self) -> PeakPss:  # noqa: PYI034
        self.peak = pss_mib(self.pids())
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def closed_loop(eng: Engine, images: np.ndarray, *, concurrency: int, seconds: float, warmup: int) -> Result:
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

    with PeakPss(eng.pids) as memory:
        began = time.perf_counter()
        threads = [threading.Thread(target=worker, args=(k,)) for k in range(concurrency)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - began
    ms = [x * 1000 for x in latencies]
    return Result(len(latencies) / elapsed, percentile(ms, 50), percentile(ms, 95), memory.peak)


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


def overhead(args) -> None:
    print("\n## Per-request overhead, tiny model (1x8x8 digits-size input, Linear 64->10), batch 1, c=1")
    torch.manual_seed(0)
    tiny = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    images = np.random.default_rng(0).random((64, 1, 8, 8), dtype=np.float32)
    base = in_process(tiny, images, threads=1, batch=1, seconds=args.seconds)
    eng = engine_run(tiny, images, EngineConfig(), concurrency=1, seconds=args.seconds, warmup=50)
    print(HEADER)
    print(row("in-process, 1 thread", base))
    print(row("engine K=1, 1 thread", eng))
    print(f"overhead per request (p50 engine - p50 in-process): {(eng.p50_ms - base.p50_ms) * 1000:.0f} us (target < 300 us)")


def merge(results: list[Result]) -> Result:
    return Result(statistics.fmean(r.throughput for r in results), statistics.median(r.p50_ms for r in results),
                  statistics.median(r.p95_ms for r in results), max(r.pss_mib for r in results))


def k1_vs_inprocess(args, name: str, images: np.ndarray, rounds: int = 3) -> None:
    print(f"\n## {name}: engine K=1 vs the same model in-process, same threads, batch 1, c=1 "
          f"({rounds} alternating rounds)")
    model = build(name)
    print(HEADER)
    for threads in args.threads:
        if threads > len(usable_cores()):
            continue
        base, eng = [], []
        with Engine(model, EngineConfig(threads_per_shard=threads), input_shape=images.shape[1:]) as engine:
            for _ in range(rounds):
                base.append(in_process(model, images, threads=threads, batch=1, seconds=args.seconds / rounds))
                eng.append(closed_loop(engine, images, concurrency=1, seconds=args.seconds / rounds, warmup=2))
        b, e = merge(base), merge(eng)
        print(row(f"in-process, {threads} thread(s)", b))
        print(row(f"engine K=1, {threads} thread(s)", e, f"ratio {e.throughput / b.throughput:.2f} (target >= 0.95)"))


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
                config = EngineConfig(shards=k, threads_per_shard=threads, batch_size=batch, pool_slots=max(16, c),
                                      max_wait_ms=2.0 if batch > 1 else 0.0, oversubscribe=k * threads > cores)
                r = engine_run(model, images, config, concurrency=c, seconds=args.seconds, warmup=2 * c)
                note = f"x{r.throughput / naive.throughput:.2f} vs naive" + (" (oversubscribed)" if config.oversubscribe else "")
                print(row(f"K={k} threads={threads} batch={batch} c={c}", r, note))
                if best is None or r.throughput > best[1].throughput:
                    best = (f"K={k} threads={threads} batch={batch}", r)
    assert best is not None
    print(f"best layout {best[0]}: {best[1].throughput / naive.throughput:.2f}x the naive in-process throughput "
          "(target >= 1.6x for mobilenet_v3_small)")


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
        r = engine_run(model, images, EngineConfig(shards=2, share_weights=share), concurrency=2,
                       seconds=args.seconds, warmup=4)
        peaks[share] = r.pss_mib
        print(row(f"share_weights={share}", r))
    print(f"saving {peaks[False] - peaks[True]:.0f} MiB; one copy of the weights is {weights:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64x64 inputs, 1.5 s windows, 1 thread per shard, mobilenet grid only")
    parser.add_argument("--size", type=int, default=None, help="image side (default 224, 64 with --quick)")
    parser.add_argument("--seconds", type=float, default=None, help="measured window per layout")
    args = parser.parse_args()
    size = args.size or (64 if args.quick else 224)
    args.seconds = args.seconds or (1.5 if args.quick else 8.0)
    args.threads = [1] if args.quick else [1, 2]
    images = np.random.default_rng(0).random((32, 3, size, size), dtype=np.float32)
    print(f"# engine benchmark{' (QUICK: small inputs, short windows, noisy)' if args.quick else ''}")
    print(f"torch {torch.__version__}, usable cores {usable_cores()}, input 3x{size}x{size}, window {args.seconds:g} s")
    overhead(args)
    k1_vs_inprocess(args, "resnet18", images)
    grid(args, "mobilenet_v3_small", images)
    if not args.quick:
        grid(args, "resnet18", images)
    pipeline_vs_replica(args, "resnet18", images)
    share_weights(args, "resnet18", images)


if __name__ == "__main__":
    main()
