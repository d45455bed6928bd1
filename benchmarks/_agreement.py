"""Does a layout measured inside a study agree with the same layout measured by a plain script?

The study side is the trial's own measurement path: :func:`lepton_tune.measure.run_isolated` (a
fresh trial process, warm-up, timed windows with the noise guard, then the memory window), the
quickstart's protocol. The script side is a fresh process that starts the same :class:`Engine`
with the same layout and drives it with plain client threads (benchmarks/_sides.py). Both use the
same model weights, the same images, the same requests in flight and the same windows (warm-up,
then the median of 3 windows of as many requests); the two are interleaved
round by round. Agreement: the study/script throughput ratio's 95% interval within [0.90, 1.10].
"""

from __future__ import annotations

import statistics

import numpy as np
from _sides import Side, build, wait_until_quiet
from _stats import bootstrap_median

from lepton_tune.config import EngineConfig, PricesSpec, ProtocolSpec, usable_cores
from lepton_tune.measure import EngineJob, run_isolated

LAYOUTS = [  # (shards, threads per shard, batch)
    (1, None, 1),
    (1, None, 8),
    (2, 1, 1),
    (2, 1, 8),
]


def agreement(args) -> None:  # type: ignore[no-untyped-def]
    cores = len(usable_cores())
    name, size = "small_cnn", 32
    model = build(name, size)
    images = np.random.default_rng(0).random((64, 3, size, size), dtype=np.float32)
    rounds = max(3, min(args.rounds, 5))
    print(
        f"\n## Inside a study vs a plain script: {name} at 3x{size}x{size} (the quickstart's backbone), fp32, "
        f"closed loop (c = 4 at batch 1, 16 at batch 8), {rounds} interleaved rounds; the study side is the "
        "trial's run_isolated measurement (quickstart protocol: 3 windows of 200 requests)"
    )
    print("| layout              | study img/s | script img/s | study / script (95% CI) | within 10%")
    for shards, threads, batch in LAYOUTS:
        threads = threads or cores
        c = 4 if batch == 1 else 16
        options = dict(
            shards=shards,
            threads_per_shard=threads,
            batch_size=batch,
            max_wait_ms=2.0 if batch > 1 else 0.0,
            pool_slots=32,
        )
        protocol = ProtocolSpec(
            warmup=20, requests=200 if batch == 1 else 800, repeats=3, concurrency=c, probe_requests=0
        )
        study_tp, script_tp = [], []
        with Side("engine", name, size, **options) as script:
            for _ in range(rounds):
                job = EngineJob(model, EngineConfig(**options), (3, size, size), images, protocol, PricesSpec())
                outcome = run_isolated(job)
                if outcome.kind != "ok":
                    raise RuntimeError(outcome.reason)
                study_tp.append(outcome.record["metrics"]["throughput"])
                wait_until_quiet()  # the trial's processes end in the background: let them go before the script's windows
                # the same windows as the protocol: warm-up, then the median of 3 windows of as many requests
                script.window(concurrency=c, requests=protocol.warmup)
                script_tp.append(
                    statistics.median(
                        script.window(concurrency=c, requests=protocol.requests) for _ in range(protocol.repeats)
                    )
                )
        ratios = [a / b for a, b in zip(study_tp, script_tp)]
        iv = bootstrap_median(ratios)
        ok = iv.low >= 0.90 and iv.high <= 1.10
        print(
            f"| K={shards} x {threads} thr, b{batch:<2} | {statistics.median(study_tp):11.0f} | "
            f"{statistics.median(script_tp):12.0f} | {iv.median:.2f} [{iv.low:.2f}, {iv.high:.2f}] | "
            f"{'yes' if ok else 'NO'}",
            flush=True,
        )
