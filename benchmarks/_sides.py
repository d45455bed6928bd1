"""Each side of a comparison in its own fresh process, driven window by window from the benchmark.

A side builds its model (same seed, same weights), starts its server once (the model in-process,
or an :class:`Engine`), and on each command runs one closed-loop window with its own client
threads and answers the throughput. Nothing of one side (its OpenMP teams, its threads, its
memory) is in the other's process, exactly as in a study, where the baseline and every trial run
in a fresh trial process; the two are interleaved window by window.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def build(name: str, size: int) -> Any:
    """A torchvision classifier (``weights=None``) or a lepton-tune registry backbone (``small_cnn``), seed 0."""
    sys.path.insert(0, str(ROOT))
    import torch
    import torchvision

    from lepton_tune.models import build_model

    torch.manual_seed(0)
    if name == "small_cnn":
        return build_model(name, num_classes=10, image_shape=(3, size, size)).eval()
    return getattr(torchvision.models, name)(weights=None).eval()


def _window(server: Any, images: Any, *, concurrency: int, seconds: float, requests: int = 0) -> float:
    """Throughput of ``concurrency`` client threads for ``seconds`` (or until ``requests`` were answered)."""
    done = [0] * concurrency
    stop_at = time.perf_counter() + seconds
    tickets = iter(range(requests)) if requests else None
    lock = threading.Lock()

    def more() -> bool:
        if tickets is None:
            return time.perf_counter() < stop_at
        with lock:
            return next(tickets, None) is not None

    def client(k: int) -> None:
        i = k
        while more():
            server.submit(images[i % len(images)]).result(timeout=120)
            done[k] += 1
            i += concurrency

    threads = [threading.Thread(target=client, args=(k,)) for k in range(concurrency)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


def _batches(model: Any, images: Any, *, batch: int, seconds: float) -> float:
    import torch

    x = torch.from_numpy(images[:batch].copy())
    n, began = 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - began < seconds:
            model(x)
            n += batch
    return n / (time.perf_counter() - began)


def _main(conn: Any, kind: str, name: str, size: int, options: dict[str, Any]) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np
    import torch

    model = build(name, size)
    images = np.random.default_rng(0).random((16, 3, size, size), dtype=np.float32)
    servers: dict[str, Any] = {}
    engine = None
    if kind == "engine":
        from lepton_tune.config import EngineConfig
        from lepton_tune.engine import Engine

        torch.set_num_threads(1)  # as a trial process: it only dispatches
        engine = Engine(model, EngineConfig(**options), input_shape=images.shape[1:]).start()
    else:
        from lepton_tune.measure._inprocess import FORMS, InProcessServer

        # Pre-formed batches run in this main thread alone: a served form would start an OpenMP
        # team in its own thread, whose idle workers slow every torch op of the process's other threads.
        if options.get("batch", 1) == 1:
            servers = {form: InProcessServer(model, form).__enter__() for form in FORMS}
    for server in list(servers.values()) or ([engine] if engine is not None else []):  # warm up
        _window(server, images, concurrency=2, seconds=1.0)
    if kind != "engine" and options.get("batch", 1) > 1:
        _batches(model, images, batch=options["batch"], seconds=1.0)
    conn.send("ready")
    while (command := conn.recv()) is not None:
        form, concurrency, seconds, batch, requests = command
        if engine is not None:
            conn.send(_window(engine, images, concurrency=concurrency, seconds=seconds, requests=requests))
        elif form == "batches":
            conn.send(_batches(model, images, batch=batch, seconds=seconds))
        else:
            conn.send(_window(servers[form], images, concurrency=concurrency, seconds=seconds))
    if engine is not None:
        engine.close()
    for server in servers.values():
        server.__exit__(None, None, None)


def wait_until_quiet(timeout: float = 15.0) -> None:
    """Wait until other processes use under 0.1 of a core: a trial's processes (forkserver, trial
    process, shards) take 0.5-1 s of CPU to exit after it answered (measured: a window started at
    once ran at 20-60% of its speed), and they are no longer our children by then."""
    import os

    sys.path.insert(0, str(ROOT))
    from lepton_tune.measure import NoiseMeter

    limit = time.monotonic() + timeout
    while time.monotonic() < limit:
        meter = NoiseMeter(lambda: [os.getpid()])
        meter.start()
        time.sleep(0.25)
        if meter.stop().outside < 0.10:
            return


class Side:
    """A fresh process serving one side; ``window(...)`` returns its throughput in img/s."""

    def __init__(self, kind: str, name: str, size: int, **engine_options: Any) -> None:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(child, kind, name, size, engine_options), daemon=False)
        self._proc.start()
        child.close()
        if self._conn.recv() != "ready":  # pragma: no cover
            raise RuntimeError(f"{kind} side failed to start")

    def window(
        self, *, form: str = "engine", concurrency: int = 1, seconds: float = 2.0, batch: int = 1, requests: int = 0
    ) -> float:
        self._conn.send((form, concurrency, seconds, batch, requests))
        return float(self._conn.recv())

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(30)
        if self._proc.is_alive():
            self._proc.kill()

    def __enter__(self) -> Side:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
