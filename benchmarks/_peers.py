"""The hand-tuned peers of benchmarks/serving.py, each as a ``submit(image) -> Future`` server.

Every peer is what a performance engineer would write without lepton-tune, tuned over a declared
grid (see :data:`GRIDS`), and every one answers the same single-image requests:

- ``naive``: the model called in-process (lepton-tune's ``InProcessServer``: one worker, or every
  client calling the model; the faster is kept).
- ``torch``: channels_last, bf16 autocast where the CPU has native bf16, torch.compile (freezing)
  in the full grid; a batcher of up to B requests in one worker thread.
- ``ort`` / ``ort_int8``: W sessions x T intra-op threads, each in its own worker thread with a
  batcher of up to B (graph optimisation ALL), with and without pinning each worker to its cores.
- ``ov``: OpenVINO with the LATENCY or THROUGHPUT hint, an ``AsyncInferQueue`` of the compiled
  model's optimal number of requests, f32 forced or NNCF int8 (and, disclosed, OpenVINO's own
  default precision: bf16 on CPUs with native bf16).

Batchers never wait for a batch to fill: a worker takes what is queued, up to B.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

import numpy as np

Runner = Callable[[np.ndarray], np.ndarray]


def grids(cores: int, quick: bool) -> dict[str, list[dict[str, Any]]]:
    """The declared grid of each peer family (the first setting of a one-setting family is used as is)."""
    batches = (1, 8) if quick else (1, 8, 32)
    ort = [
        {"sessions": w, "threads": t, "batch": b, "pin": p}
        for w in range(1, cores + 1)
        for t in range(1, cores + 1)
        if w * t <= cores
        for b in batches
        for p in ((False,) if quick or w * t < cores else (False, True))
    ]
    torch_grid = [{"bf16": bf16, "compile": False, "batch": b} for bf16 in (False, True) for b in (1, 8)]
    if not quick:
        torch_grid += [{"bf16": bf16, "compile": True, "batch": 8} for bf16 in (False, True)]
    return {
        "naive": [{"form": "serial"}, {"form": "concurrent"}],
        "torch": torch_grid,
        "ort": ort,
        "ort_int8": [dict(s) for s in ort],
        "ov": [{"hint": h, "precision": "fp32"} for h in ("LATENCY", "THROUGHPUT")],
        "ov_int8": [{"hint": h, "precision": "int8"} for h in ("LATENCY", "THROUGHPUT")],
        "ov_default": [{"hint": "THROUGHPUT", "precision": "default"}],
    }


class BatchPool:
    """``workers`` threads, each with its own runner (built in that thread, after pinning), batching up to ``batch``."""

    def __init__(
        self, make_runner: Callable[[int], Runner], workers: int, batch: int, cores: list[list[int]] | None = None
    ) -> None:
        self._queue: queue.SimpleQueue[tuple[np.ndarray, Future[np.ndarray]] | None] = queue.SimpleQueue()
        self.batch, self._ready = batch, threading.Barrier(workers + 1)
        self._threads = [
            threading.Thread(target=self._serve, args=(make_runner, i, cores[i] if cores else None), daemon=True)
            for i in range(workers)
        ]
        for thread in self._threads:
            thread.start()
        self._ready.wait(600)

    def _serve(self, make_runner: Callable[[int], Runner], index: int, cores: list[int] | None) -> None:
        if cores is not None:
            os.sched_setaffinity(0, cores)  # this thread; the runtime's threads created from here inherit it
        run = make_runner(index)
        self._ready.wait(600)
        while (item := self._queue.get()) is not None:
            items = [item]
            while len(items) < self.batch:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)
                    break
                items.append(more)
            try:
                out = run(np.stack([image for image, _ in items]))
                for i, (_, future) in enumerate(items):
                    future.set_result(out[i])
            except Exception as exc:  # noqa: BLE001 - the error is every request's answer
                for _, future in items:
                    future.set_exception(exc)

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        self._queue.put((image, future))
        return future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)
        for thread in self._threads:
            thread.join(10)


class AsyncQueueServer:
    """OpenVINO's own serving loop: ``AsyncInferQueue`` over a compiled model (one image per request)."""

    def __init__(self, compiled: Any) -> None:
        import openvino as ov

        self.jobs = int(compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
        self._queue = ov.AsyncInferQueue(compiled, self.jobs)
        self._queue.set_callback(self._done)
        # start_async is not safe from several threads at once ("Infer Request is busy"): one caller
        # at a time; it returns as soon as an idle request took the image, so this only orders submissions.
        self._lock = threading.Lock()

    @staticmethod
    def _done(request: Any, future: Future[np.ndarray]) -> None:
        future.set_result(request.get_output_tensor(0).data[0].copy())

    def submit(self, image: np.ndarray) -> Future[np.ndarray]:
        future: Future[np.ndarray] = Future()
        try:
            with self._lock:
                self._queue.start_async({0: image[None]}, future)
        except RuntimeError as exc:
            future.set_exception(exc)
        return future

    def close(self) -> None:
        self._queue.wait_all()


class _Closing:
    """Wrap an ``InProcessServer`` (a context manager) as a server with ``close``."""

    def __init__(self, server: Any) -> None:
        self.server = server.__enter__()
        self.submit = self.server.submit

    def close(self) -> None:
        self.server.__exit__(None, None, None)


def _torch_runner(module: Any, setting: dict[str, Any]) -> Runner:
    import torch

    model = module.to(memory_format=torch.channels_last).eval()
    if setting.get("compile"):
        model = torch.compile(model, options={"freezing": True})

    def run(x: np.ndarray) -> np.ndarray:
        n = len(x)
        if setting.get("compile") and n < setting["batch"]:  # one compiled shape: pad, never recompile per size
            x = np.concatenate([x, np.zeros((setting["batch"] - n, *x.shape[1:]), x.dtype)])
        with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=setting["bf16"]):
            return model(torch.from_numpy(x).contiguous(memory_format=torch.channels_last)).float().numpy()[:n]

    return run


def _ort_runner(onnx: bytes, threads: int) -> Runner:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    session = ort.InferenceSession(onnx, options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def _ov_compiled(xml: str, setting: dict[str, Any]) -> Any:
    import openvino as ov

    config: dict[str, Any] = {"PERFORMANCE_HINT": setting["hint"]}
    if setting["precision"] != "default":
        config["INFERENCE_PRECISION_HINT"] = "f32"
    return ov.Core().compile_model(xml, "CPU", config)


def build_server(family: str, setting: dict[str, Any], artifacts: dict[str, Any], cores: int) -> Any:
    """A started server for ``family`` with ``setting`` over the prepared ``artifacts``."""
    if family == "naive":
        import torch

        from lepton_tune.measure._inprocess import InProcessServer

        torch.set_num_threads(cores)
        return _Closing(InProcessServer(artifacts["module"], setting["form"]))
    if family == "torch":
        import torch

        torch.set_num_threads(cores)
        run = _torch_runner(artifacts["module"], setting)
        return BatchPool(lambda _: run, 1, setting["batch"])
    if family in ("ort", "ort_int8"):
        blob = artifacts["onnx_int8" if family == "ort_int8" else "onnx"]
        w, t = setting["sessions"], setting["threads"]
        plan = [list(range(i * t, (i + 1) * t)) for i in range(w)] if setting["pin"] else None
        return BatchPool(lambda _: _ort_runner(blob, t), w, setting["batch"], plan)
    if family.startswith("ov"):
        xml = artifacts["ov_int8" if setting["precision"] == "int8" else "ov"]
        server = AsyncQueueServer(_ov_compiled(xml, setting))
        setting["requests"] = server.jobs
        return server
    raise ValueError(f"unknown peer family {family!r}")


def computed_precision(family: str, setting: dict[str, Any], native_bf16: bool) -> str:
    """The precision a peer actually computes in, in words."""
    if family == "ov_default":
        return "bf16 (OpenVINO's default here)" if native_bf16 else "f32 (OpenVINO's default here)"
    if family in ("ort_int8", "ov_int8"):
        return "int8"
    if family == "torch" and setting.get("bf16"):
        return "bf16 autocast"
    return "fp32"
