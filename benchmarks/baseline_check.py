"""An independent re-measure of the naive baseline a study recorded.

The study's baseline is "the user's own model called in one plain process" (lepton_tune's
in-process baseline). This script does not trust that code: it takes the same trained weights
(from the model cache, through the study's own recipe), builds the model in a fresh plain process
of its own with nothing of lepton-tune's measurement in it, and serves the same load as the
study's protocol (the same request images, the same number of client threads, the same windows,
batch 1, torch's default threads) in both plain forms: one worker answering one request at a time,
and every client calling the model at once. Rounds interleave it with lepton-tune's own baseline
measurement of the same model (this host's speed drifts over minutes: see benchmarks/README.md);
the faster plain form must come within 10% of lepton-tune's number. The study's recorded value is
printed beside them.

    python benchmarks/baseline_check.py                    # runs a 2-trial quickstart first (~2-4 min)
    python benchmarks/baseline_check.py --run-dir lepton-runs  # check an existing study's baselines
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))


def _plain_server(
    conn,
    backbone: str,
    num_classes: int,
    shape: tuple[int, ...],
    weights: str,  # type: ignore[no-untyped-def]
    images_path: str,
    concurrency: int,
) -> None:
    """The user's deployment, written from scratch: load weights, eval, call the model per request."""
    import queue

    import numpy as np
    import torch

    from lepton_tune.models import (
        build_model,  # the architecture only; the weights come from the file
    )

    model = build_model(backbone, num_classes=num_classes, image_shape=shape)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    model.eval()
    images = np.load(images_path)

    def call(image):  # type: ignore[no-untyped-def]
        with torch.inference_mode():
            return model(torch.from_numpy(image)[None])

    jobs: queue.SimpleQueue = queue.SimpleQueue()

    def worker() -> None:
        while (job := jobs.get()) is not None:
            image, done = job
            call(image)
            done.set()

    server = threading.Thread(target=worker, daemon=True)
    server.start()
    forms = {"serial": lambda image: _roundtrip(jobs, image), "concurrent": call}
    conn.send(torch.get_num_threads())
    while (command := conn.recv()) is not None:
        form, requests = command
        conn.send(_clients(forms[form], images, concurrency, requests))
    jobs.put(None)
    server.join(10)


def _roundtrip(jobs, image) -> None:  # type: ignore[no-untyped-def]
    done = threading.Event()
    jobs.put((image, done))
    done.wait()


def _clients(serve, images, concurrency: int, requests: int) -> float:  # type: ignore[no-untyped-def]
    """Throughput of ``concurrency`` client threads until ``requests`` were answered."""
    tickets = iter(range(requests))
    lock = threading.Lock()

    def client(k: int) -> None:
        i = k
        while True:
            with lock:
                if next(tickets, None) is None:
                    return
            serve(images[i % len(images)])
            i += concurrency

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return requests / (time.perf_counter() - began)


def _run_quickstart(run_dir: Path) -> None:
    cmd = [
        sys.executable,
        "-m",
        "lepton_tune",
        "search",
        str(ROOT / "studies" / "quickstart.yaml"),
        "--n-trials",
        "2",
        "--run-dir",
        str(run_dir),
        "--no-report",
        "--no-tracking",
        "--quiet",
    ]
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run-dir", type=Path, default=None, help="an existing study's run dir (default: run one)")
    parser.add_argument("--rounds", type=int, default=7, help="interleaved rounds")
    args = parser.parse_args()

    import optuna

    from lepton_tune.config import StudySpec
    from lepton_tune.tuning import load_existing_study, resolve_storage_url
    from lepton_tune.tuning._prepare import ModelPreparer

    run_dir = args.run_dir or Path(tempfile.mkdtemp(prefix="baseline-check-"))
    if args.run_dir is None:
        _run_quickstart(run_dir)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = load_existing_study(resolve_storage_url(None, run_dir), None)
    spec = StudySpec.model_validate(study.user_attrs["spec"])
    preparer = ModelPreparer(spec)
    protocol = spec.protocol
    print(
        f"study {study.study_name!r} in {run_dir}; protocol: closed loop, {protocol.concurrency} clients, batch 1, "
        f"{protocol.warmup} warm-up requests then the median of {protocol.repeats} windows of {protocol.requests} "
        f"requests; {args.rounds} interleaved rounds of (lepton-tune's baseline measurement, this script)"
    )
    print(
        "| backbone | recorded in the study | lepton-tune now (median) | this script now: serial / concurrent "
        "| script / lepton-tune now (95% CI) | within 10%"
    )
    for trial in study.get_trials(deepcopy=False):
        attrs = trial.user_attrs
        if not attrs.get("baseline") or attrs.get("baseline_kind") != "in-process" or "metrics" not in attrs:
            continue
        _check(trial, spec, preparer, args.rounds)


def _check(trial, spec, preparer, rounds: int) -> None:  # type: ignore[no-untyped-def]
    import numpy as np
    import torch
    from _sides import wait_until_quiet
    from _stats import bootstrap_median

    from lepton_tune.config import EngineConfig, PricesSpec
    from lepton_tune.measure import EngineJob, request_pool, run_isolated

    point, protocol = trial.user_attrs["point"], spec.protocol
    prepared = preparer.prepare(point)
    data = preparer.dataset
    pool = request_pool(data.test[0].numpy())
    tmp = Path(tempfile.mkdtemp())
    torch.save(prepared.module.state_dict(), tmp / "w.pt")
    np.save(tmp / "images.npy", pool)
    ctx = mp.get_context("spawn")
    conn, child = ctx.Pipe()
    proc = ctx.Process(
        target=_plain_server,
        args=(
            child,
            point["backbone"],
            len(data.classes),
            tuple(data.image_shape),
            str(tmp / "w.pt"),
            str(tmp / "images.npy"),
            protocol.concurrency,
        ),
    )
    proc.start()
    threads = conn.recv()
    ours, serial, concurrent = [], [], []
    for _ in range(rounds):
        job = EngineJob(
            prepared.module, EngineConfig(), tuple(data.image_shape), pool, protocol, PricesSpec(), serve="in-process"
        )
        outcome = run_isolated(job)
        ours.append(outcome.record["metrics"]["throughput"])
        wait_until_quiet()
        for form, out in (("serial", serial), ("concurrent", concurrent)):
            conn.send((form, protocol.warmup))
            conn.recv()
            windows = []
            for _ in range(protocol.repeats):
                conn.send((form, protocol.requests))
                windows.append(conn.recv())
            out.append(statistics.median(windows))
    conn.send(None)
    proc.join(30)
    best = [max(a, b) for a, b in zip(serial, concurrent)]
    iv = bootstrap_median([b / o for b, o in zip(best, ours)])
    ok = iv.low >= 0.90 and iv.high <= 1.10
    print(
        f"| {point['backbone']} | {trial.user_attrs['metrics']['throughput']:.0f} "
        f"({trial.user_attrs.get('baseline_form')}) | {statistics.median(ours):.0f} | "
        f"{statistics.median(serial):.0f} / {statistics.median(concurrent):.0f} ({threads} threads) | "
        f"{iv.median:.2f} [{iv.low:.2f}, {iv.high:.2f}] | {'yes' if ok else 'NO'}",
        flush=True,
    )


if __name__ == "__main__":
    main()
