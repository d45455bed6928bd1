"""One contender of benchmarks/serving.py in a fresh process of its own, driven command by command.

A contender process loads the prepared artifacts (trained weights, ONNX files, OpenVINO IRs, or
a lepton-tune bundle) from the model cache, starts one server, and answers:

- ``("screen", settings, clients, seconds)``: builds each setting in turn, one closed-loop window
  each (the hand-tuning step of a peer's grid); answers img/s per setting;
- ``("use", setting)``: starts the chosen setting and keeps it;
- ``("window", clients, seconds)``: closed loop, ``clients`` threads each with one request in
  flight, a new one as soon as one is answered; answers img/s;
- ``("single", n)``: one request in flight, ``n`` requests after a warm-up; answers latencies (ms);
- ``("predict",)``: the test images through the serving path (16 in flight); answers the logits.

Nothing of one contender (threads, OpenMP teams, memory) is in another's process.
"""

from __future__ import annotations

import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def closed_loop(server: Any, images: Any, *, clients: int, seconds: float) -> float:
    """img/s of ``clients`` threads, each submitting its next image as soon as the last is answered."""
    done = [0] * clients
    stop = time.perf_counter() + seconds

    def client(k: int) -> None:
        i = k
        while time.perf_counter() < stop:
            server.submit(images[i % len(images)]).result(timeout=300)
            done[k] += 1
            i += clients

    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.perf_counter() - began)


def predict(server: Any, images: Any, clients: int = 16) -> Any:
    """Every image through ``server`` with ``clients`` in flight; the logits in order."""
    import numpy as np

    out: list[Any] = [None] * len(images)
    lock, cursor = threading.Lock(), iter(range(len(images)))

    def client() -> None:
        while True:
            with lock:
                i = next(cursor, None)
            if i is None:
                return
            out[i] = server.submit(np.array(images[i])).result(timeout=300)

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.stack(out)


def _lepton_server(bundle: str) -> Any:
    import torch

    import lepton_tune

    torch.set_num_threads(1)  # as a trial process: the parent only dispatches
    return lepton_tune.load_bundle(bundle)


def _main(conn: Any, family: str, artifacts: dict[str, Any], cores: int) -> None:
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import numpy as np
    from _peers import build_server

    images = np.load(artifacts["requests"])
    test = np.load(artifacts["test"], mmap_mode="r")
    if family.startswith("lepton"):
        server = _lepton_server(artifacts["bundle"])
    else:
        artifacts = {**artifacts, **_load(artifacts)}
        server = None
    conn.send("ready")
    while (command := conn.recv()) is not None:
        kind = command[0]
        if kind == "screen":
            rates = []
            for setting in command[1]:
                trial = build_server(family, dict(setting), artifacts, cores)
                closed_loop(trial, images, clients=command[2], seconds=command[3] / 3)  # warm-up
                rates.append(closed_loop(trial, images, clients=command[2], seconds=command[3]))
                trial.close()
            conn.send(rates)
        elif kind == "use":
            setting = dict(command[1])
            server = build_server(family, setting, artifacts, cores)
            closed_loop(server, images, clients=4, seconds=1.0)  # warm-up (compiles, first-call costs)
            conn.send(setting)
        elif kind == "window":
            conn.send(closed_loop(server, images, clients=command[1], seconds=command[2]))
        elif kind == "single":
            for i in range(5):
                server.submit(images[i % len(images)]).result(timeout=300)
            lat = []
            for i in range(command[1]):
                t = time.perf_counter()
                server.submit(images[i % len(images)]).result(timeout=300)
                lat.append((time.perf_counter() - t) * 1000)
            conn.send(lat)
        elif kind == "predict":
            conn.send(predict(server, test))
    if server is not None:
        server.close()


def _load(artifacts: dict[str, Any]) -> dict[str, Any]:
    """The trained module (rebuilt from its saved weights) and the exported ONNX files' bytes."""
    import torch

    from lepton_tune.models import build_model

    module = build_model(artifacts["backbone"], num_classes=artifacts["num_classes"], image_shape=(3, 224, 224))
    module.load_state_dict(torch.load(artifacts["weights"], weights_only=True))
    loaded: dict[str, Any] = {"module": module.eval()}
    for key in ("onnx", "onnx_int8"):
        loaded[key] = Path(artifacts[key]).read_bytes()
    return loaded


class Contender:
    """A fresh process serving one contender family."""

    def __init__(self, family: str, artifacts: dict[str, Any], cores: int) -> None:
        ctx = mp.get_context("spawn")
        self.family = family
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_main, args=(child, family, artifacts, cores))
        self._proc.start()
        child.close()
        if self._conn.recv() != "ready":  # pragma: no cover
            raise RuntimeError(f"contender {family} failed to start")

    def ask(self, *command: Any) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def close(self) -> None:
        try:
            self._conn.send(None)
        except OSError:
            pass
        self._proc.join(60)
        if self._proc.is_alive():
            self._proc.kill()
