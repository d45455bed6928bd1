"""The Engine: K shard processes behind submit/predict, with slot pools, batching, cache, recovery."""

from __future__ import annotations

import os
import threading
import time
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from lepton_tune.config import EngineConfig, usable_cores
from lepton_tune.engine._cache import ResultCache, input_key
from lepton_tune.engine._dispatch import Dispatcher
from lepton_tune.engine._feasible import feasibility
from lepton_tune.engine._lane import mp_context
from lepton_tune.engine._layout import build_lanes
from lepton_tune.engine._plan import plan_cores
from lepton_tune.engine._request import Request, as_images, fail, settle
from lepton_tune.engine._runtime import model_runtime_error
from lepton_tune.engine._threads import ThreadDispatcher
from lepton_tune.exceptions import EngineError, EngineInputError

__all__ = ["Engine", "EngineStats"]

_CLOSED = "engine: this engine is closed; create a new Engine to serve again"


@dataclass(frozen=True)
class EngineStats:
    """A snapshot of an engine.

    Attributes:
        requests: requests received (cache hits included).
        cache_hits: requests answered from the result cache.
        queue_depth: requests in flight per lane (per shard in replica mode; one entry, the whole
            pipeline, in pipeline mode).
        restarts: lane restarts after a shard died.
        core_plan: shard index -> CPU ids it may run on.
        pids: parent pid and every live shard pid.
        pending: requests waiting in the parent for a free slot.
        device_memory_mb: peak CUDA memory summed over lanes (None on CPU).
    """

    requests: int
    cache_hits: int
    queue_depth: list[int]
    restarts: int
    core_plan: dict[int, list[int]]
    pids: list[int]
    pending: int = 0
    device_memory_mb: float | None = None


class Engine:
    """Serve ``model`` from ``config.shards`` worker processes.

    With ``isolation: process`` (the default) every shard is a worker process. With
    ``isolation: thread`` (runtime onnxruntime only) the K lanes are threads of this process, each
    with its own ONNX Runtime session: no copy or pipe per request, no crash isolation.

    Shards start with the forkserver method and do not re-run the parent's ``__main__``, except
    when the model's class is defined there: then the script needs the usual
    ``if __name__ == "__main__":`` guard.

    Args:
        model: the converted model (fp32/bf16 module, int8 FX GraphModule, ...); for
            ``runtime: onnxruntime`` an :class:`OnnxModule` (the exported graph).
        config: the serving layout.
        input_shape: one image's shape; None takes it from the first request that the model
            accepts (the shards then start at that request). A first request the model cannot run
            raises :class:`EngineInputError` and leaves the engine waiting for a well-formed one.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> with Engine(net, EngineConfig(), input_shape=(3, 2, 2)) as eng:  # doctest: +SKIP
        ...     eng.predict(np.zeros((5, 3, 2, 2), np.float32)).shape
        (5, 3)
    """

    def __init__(
        self, model: torch.nn.Module, config: EngineConfig, *, input_shape: tuple[int, ...] | None = None
    ) -> None:
        self.model, self.config = model, config
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self._shape_given = input_shape is not None
        self.output_shape: tuple[int, ...] | None = None
        self.startup_seconds = 0.0
        self._cache = ResultCache(capacity=config.cache_entries)
        self._requests = self._hits = 0
        self._count_lock = threading.Lock()
        self._launch_lock = threading.Lock()
        self._started = self._closed = False
        self._core_plan: list[list[int]] = []
        self._dispatch: Dispatcher | ThreadDispatcher | None = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Engine:
        """Check the layout and start the shards (at the first request if input_shape is None).

        Raises:
            ConfigError: the layout does not fit the usable cores.
            EngineError: closed engine, unsupported runtime or device, or a shard failed to start.

        Example:
            >>> eng = Engine(net, EngineConfig(shards=2), input_shape=(3, 32, 32)).start()  # doctest: +SKIP
        """
        if self._closed:
            raise EngineError(_CLOSED)
        if self._started:
            return self
        usable = usable_cores()
        self._core_plan = plan_cores(self.config, usable)
        reason = feasibility(self.config, len(usable)) or model_runtime_error(self.model, self.config.runtime)
        if reason:
            raise EngineError(f"engine: {reason}" + (". Use device: cpu" if "needs CUDA" in reason else ""))
        self._started = True
        if self.input_shape is not None:
            self._launch(self.input_shape)
        return self

    def __enter__(self) -> Engine:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _launch(self, shape: tuple[int, ...]) -> None:
        with self._launch_lock:
            if self._dispatch is not None or self._closed:
                return
            began = time.perf_counter()
            self.input_shape = shape
            try:
                if self.config.isolation == "thread":
                    threads = ThreadDispatcher(
                        self.model,
                        self.config,
                        self._core_plan,
                        timeout_s=self.config.request_timeout_s,
                        start_timeout_s=self._start_timeout_s(),
                        deliver=self._deliver,
                    )
                    self._dispatch = threads
                    self.output_shape = threads.start(shape)
                else:
                    processes = Dispatcher(
                        mp_context(self.model),
                        timeout_s=self.config.request_timeout_s,
                        start_timeout_s=self._start_timeout_s(),
                        deliver=self._deliver,
                    )
                    self._dispatch = processes
                    lanes, self.output_shape = build_lanes(self.model, self.config, shape, self._core_plan)
                    processes.start(lanes)
            except Exception as exc:
                if self._shape_given:
                    self.close()
                    raise
                self._forget_launch()
                cause = (str(exc).strip().splitlines() or [""])[0]
                raise EngineInputError(
                    f"engine input: the first request's image shape {tuple(shape)} does not fit the model "
                    f"({type(exc).__name__}: {cause}). The engine is still open and takes its input shape from the "
                    "first request the model accepts; send images of the model's input shape, or pass "
                    "Engine(..., input_shape=...)"
                ) from exc
            except BaseException:
                self.close()
                raise
            self.startup_seconds = time.perf_counter() - began

    def _forget_launch(self) -> None:
        """Undo a launch whose shape came from a request: stop what started, wait for the next request."""
        dispatch, self._dispatch = self._dispatch, None
        self.input_shape = self.output_shape = None
        if dispatch is not None:
            for req in dispatch.close():
                fail(req.future, EngineError("engine: the launch this request waited for failed"))

    def _start_timeout_s(self) -> float:
        # A compile shard compiles during its start: 30-60 s at 224x224 on 2 busy cores, more for big models.
        floor = 600.0 if self.config.runtime == "compile" else 60.0
        return max(floor, self.config.request_timeout_s)

    def close(self) -> None:
        """Stop every shard and fail what is still waiting; safe to call twice or from any thread.

        Example:
            >>> eng.close(); eng.close()  # doctest: +SKIP
        """
        self._closed = True
        if self._dispatch is None:
            return
        for req in self._dispatch.close():
            fail(req.future, EngineError("engine: closed before this request was answered"))

    # -- requests --------------------------------------------------------------------------
    def _ready(self, shape: tuple[int, ...]) -> Dispatcher | ThreadDispatcher:
        if self._closed:
            raise EngineError(_CLOSED)
        if not self._started:
            raise EngineError("engine: not started; use `with Engine(...) as eng:` or call eng.start() first")
        if self._dispatch is None:
            self._launch(shape)
        if self._dispatch is None or self._closed:
            raise EngineError(_CLOSED)
        return self._dispatch

    def _deliver(self, req: Request, out: np.ndarray) -> None:
        if req.key is not None:
            self._cache.put(req.key, out)
        settle(req.future, out)

    def _enqueue(self, dispatch: Dispatcher | ThreadDispatcher, images: np.ndarray) -> list[Future[np.ndarray]]:
        deadline = time.monotonic() + self.config.request_timeout_s
        caching = self.config.cache_entries > 0
        reqs, hits = [], 0
        for image in images:
            req = Request(image=image, key=input_key(image) if caching else None, deadline=deadline)
            cached = self._cache.get(req.key) if req.key is not None else None
            if cached is not None:
                req.future.set_result(cached)
                hits += 1
            reqs.append(req)
        with self._count_lock:
            self._requests += len(reqs)
            self._hits += hits
        dispatch.enqueue([r for r in reqs if not r.future.done()])
        return [r.future for r in reqs]

    def submit(self, image: Any) -> Future[np.ndarray]:
        """Queue one image; the future resolves to its float32 output ``[num_outputs]``.

        Do not modify ``image`` until the future is done.

        Raises:
            EngineInputError: wrong dtype or shape (the engine keeps serving).

        Example:
            >>> eng.submit(np.zeros((3, 32, 32), np.float32)).result(timeout=5).shape  # doctest: +SKIP
            (10,)
        """
        array = as_images(image, self.input_shape, batched=False)
        return self._enqueue(self._ready(array.shape), array[None])[0]

    def predict(self, batch: Any) -> np.ndarray:
        """Run a batch of any length; returns float32 ``[N, num_outputs]`` in input order.

        Raises:
            EngineInputError: wrong dtype or shape (the engine keeps serving).
            EngineTimeoutError: no answer within ``request_timeout_s``.
            ShardCrashedError: a shard died on a request twice.

        Example:
            >>> eng.predict(np.zeros((4, 3, 32, 32), np.float32)).shape  # doctest: +SKIP
            (4, 10)
        """
        array = as_images(batch, self.input_shape, batched=True)
        dispatch = self._ready(tuple(array.shape[1:]))
        assert self.output_shape is not None
        out = np.empty((len(array), *self.output_shape), dtype=np.float32)
        futures = self._enqueue(dispatch, array)
        limit = time.monotonic() + self.config.request_timeout_s + 1.0
        for i, future in enumerate(futures):
            try:
                out[i] = future.result(timeout=max(0.0, limit - time.monotonic()))
            except FutureTimeout:
                raise dispatch.timeout_error("predict") from None
        return out

    # -- introspection ---------------------------------------------------------------------
    def pids(self) -> list[int]:
        """The parent pid and every live shard pid (what the memory sampler sums).

        Example:
            >>> len(eng.pids()) == eng.config.shards + 1  # doctest: +SKIP
            True
        """
        lanes: list[Any] = list(self._dispatch.lanes) if self._dispatch is not None else []
        return [os.getpid()] + [pid for lane in lanes for pid in lane.pids()]

    @property
    def device_memory_mb(self) -> float | None:
        """Peak CUDA memory reported by the shards, summed over lanes (None on CPU)."""
        lanes = self._dispatch.lanes if self._dispatch is not None else []
        peaks = [lane.peak_mib for lane in lanes if lane.peak_mib >= 0]
        return sum(peaks) if peaks else None

    def stats(self) -> EngineStats:
        """A snapshot: requests, cache hits, per-lane queue depth, restarts, core plan, pids.

        Example:
            >>> eng.stats().restarts  # doctest: +SKIP
            0
        """
        depth, pending, restarts = [], 0, 0
        if self._dispatch is not None:
            with self._dispatch.lock:
                depth = [len(lane.inflight) for lane in self._dispatch.lanes]
                pending, restarts = len(self._dispatch.pending), self._dispatch.restarts
        return EngineStats(
            requests=self._requests,
            cache_hits=self._hits,
            queue_depth=depth,
            restarts=restarts,
            core_plan={i: list(cores) for i, cores in enumerate(self._core_plan)},
            pids=self.pids(),
            pending=pending,
            device_memory_mb=self.device_memory_mb,
        )
