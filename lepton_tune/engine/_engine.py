"""The Engine: K shard processes behind submit/predict, with slot pools, batching, cache, recovery."""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np
import torch

from lepton_tune.config import EngineConfig, usable_cores
from lepton_tune.engine import _protocol as proto
from lepton_tune.engine._cache import ResultCache, input_key
from lepton_tune.engine._lane import Lane, mp_context
from lepton_tune.engine._layout import build_lanes
from lepton_tune.engine._plan import plan_cores
from lepton_tune.engine._request import Request, as_images, fail, settle
from lepton_tune.engine._runtime import runtime_support
from lepton_tune.exceptions import EngineError, EngineTimeoutError, ShardCrashedError

__all__ = ["Engine", "EngineStats"]

_TICK_S = 0.1


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

    Args:
        model: the converted model (fp32/bf16 module, int8 FX GraphModule, ...).
        config: the serving layout.
        input_shape: one image's shape; None takes it from the first request (the shards then
            start at that request).

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 3))
        >>> with Engine(net, EngineConfig(), input_shape=(3, 2, 2)) as eng:
        ...     eng.predict(np.zeros((5, 3, 2, 2), np.float32)).shape
        (5, 3)
    """

    def __init__(self, model: torch.nn.Module, config: EngineConfig, *,
                 input_shape: tuple[int, ...] | None = None) -> None:
        self.model, self.config = model, config
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.startup_seconds = 0.0
        self.output_shape: tuple[int, ...] | None = None
        self._lock = threading.Lock()
        self._launch_lock = threading.Lock()
        self._lanes: list[Lane] = []
        self._pending: deque[Request] = deque()
        self._cache = ResultCache(capacity=config.cache_entries)
        self._requests = self._hits = self._restarts = 0
        self._started = self._closed = False
        self._core_plan: list[list[int]] = []
        self._ready: dict[tuple[int, int, int], threading.Event] = {}
        self._broken: dict[tuple[int, int, int], str] = {}
        self._threads: list[threading.Thread] = []
        self._ctx: Any = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> Engine:
        """Check the layout and start the shards (at the first request if input_shape is None).

        Raises:
            ConfigError: the layout does not fit the usable cores.
            EngineError: closed engine, unsupported runtime or device, or a shard failed to start.
        """
        if self._closed:
            raise EngineError("engine: this engine is closed; create a new Engine to serve again")
        if self._started:
            return self
        self._core_plan = plan_cores(self.config, usable_cores())
        reason = runtime_support(self.config.runtime, self.config.precision, self.config.mode)
        if reason:
            raise EngineError(f"engine: {reason}")
        if self.config.device.startswith("cuda") and not torch.cuda.is_available():
            raise EngineError(f"engine: device {self.config.device!r} needs CUDA, which this host does not have. "
                              "Use device: cpu")
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
            if self._lanes or self._closed:
                return
            began = time.perf_counter()
            self.input_shape = shape
            try:
                self._ctx = mp_context()
                lanes, self.output_shape = build_lanes(self.model, self.config, shape, self._core_plan)
                self._lanes = lanes
                for lane in lanes:
                    self._arm(lane)
                    lane.launch(self._ctx, self._read)
                for lane in lanes:
                    problem = self._await_ready(lane)
                    if problem:
                        raise EngineError(f"engine: shard of lane {lane.index} failed to start: {problem}")
                    lane.live = True
            except BaseException:
                self.close()
                raise
            self.startup_seconds = time.perf_counter() - began
            self._spawn(self._watch, "lepton-engine-watch")

    def _arm(self, lane: Lane) -> None:
        for s in range(len(lane.stages)):
            self._ready[(lane.index, lane.gen, s)] = threading.Event()

    def _await_ready(self, lane: Lane) -> str | None:
        limit = time.monotonic() + max(60.0, self.config.request_timeout_s)
        for s in range(len(lane.stages)):
            key = (lane.index, lane.gen, s)
            if not self._ready[key].wait(max(0.0, limit - time.monotonic())):
                return f"no ready signal within {max(60.0, self.config.request_timeout_s):g} s"
            if key in self._broken:
                return self._broken[key]
        return None

    def _spawn(self, target: Any, name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> None:
        """Stop every shard and fail what is still waiting; safe to call twice or from any thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            leftovers = list(self._pending)
            self._pending.clear()
            for lane in self._lanes:
                leftovers.extend(lane.inflight.values())
                lane.inflight.clear()
                lane.live = False
        for lane in self._lanes:
            lane.stop()
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(5.0)
        for req in leftovers:
            fail(req.future, EngineError("engine: closed before this request was answered"))

    # -- requests --------------------------------------------------------------------------
    def _ensure(self, shape: tuple[int, ...]) -> None:
        if self._closed:
            raise EngineError("engine: this engine is closed; create a new Engine to serve again")
        if not self._started:
            raise EngineError("engine: not started; use `with Engine(...) as eng:` or call eng.start() first")
        if not self._lanes:
            self._launch(shape)
        if not self._lanes:
            raise EngineError("engine: this engine is closed; create a new Engine to serve again")

    def _request(self, image: np.ndarray, deadline: float) -> Request:
        key = input_key(image) if self.config.cache_entries else None
        req = Request(image=image, key=key, deadline=deadline)
        if key is not None:
            hit = self._cache.get(key)
            if hit is not None:
                self._hits += 1
                req.future.set_result(hit)
        return req

    def _enqueue(self, images: np.ndarray) -> list[Future]:
        deadline = time.monotonic() + self.config.request_timeout_s
        reqs = [self._request(images[i], deadline) for i in range(len(images))]
        with self._lock:
            self._requests += len(reqs)
            self._pending.extend(r for r in reqs if not r.future.done())
        self._pump()
        return [r.future for r in reqs]

    def submit(self, image: Any) -> Future:
        """Queue one image; the future resolves to its float32 output ``[num_outputs]``.

        Do not modify ``image`` until the future is done.

        Raises:
            EngineInputError: wrong dtype or shape (the engine keeps serving).

        Example:
            >>> eng.submit(np.zeros((3, 32, 32), np.float32)).result(timeout=5).shape  # doctest: +SKIP
            (10,)
        """
        array = as_images(image, self.input_shape, batched=False)
        self._ensure(array.shape)
        return self._enqueue(array[None])[0]

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
        self._ensure(tuple(array.shape[1:]))
        assert self.output_shape is not None
        out = np.empty((len(array), *self.output_shape), dtype=np.float32)
        futures = self._enqueue(array)
        limit = time.monotonic() + self.config.request_timeout_s + 1.0
        for i, future in enumerate(futures):
            try:
                out[i] = future.result(timeout=max(0.0, limit - time.monotonic()))
            except FutureTimeout:
                raise self._timeout_error("predict") from None
        return out

    def _timeout_error(self, where: str) -> EngineTimeoutError:
        return EngineTimeoutError(
            f"engine: no answer within request_timeout_s = {self.config.request_timeout_s:g} s ({where}). "
            "Raise request_timeout_s, lower the load, or check that the shards are alive"
        )

    def _pump(self) -> None:
        """Give waiting requests free slots (least loaded live lane first) and send them."""
        sends: dict[Lane, list[int]] = {}
        with self._lock:
            open_lanes = [lane for lane in self._lanes if lane.live and lane.free]
            while self._pending and open_lanes:
                req = self._pending.popleft()
                if req.future.done():
                    continue
                lane = min(open_lanes, key=lambda item: len(item.inflight))
                slot = lane.free.pop()
                lane.inflight[slot] = req
                req.lane = lane.index
                np.copyto(lane.in_np[slot], req.image)
                sends.setdefault(lane, []).append(slot)
                if not lane.free:
                    open_lanes.remove(lane)
            gens = {lane: lane.gen for lane in sends}
        for lane, slots in sends.items():
            lane.send(slots, gens[lane])

    # -- shard side events (reader threads) ------------------------------------------------
    def _read(self, lane: Lane, stage: int, gen: int, conn: Connection, proc: Any) -> None:
        key = (lane.index, gen, stage)
        while True:
            try:
                ready = wait([conn, proc.sentinel], timeout=1.0)
            except (OSError, ValueError):
                break
            if conn in ready:
                try:
                    message = conn.recv_bytes()
                except (EOFError, OSError):
                    break
                kind = message[:1]
                if kind == proto.DONE:
                    self._on_done(lane, gen, message)
                elif kind == proto.FAIL:
                    self._on_fail(lane, gen, stage, message)
                elif kind == proto.READY:
                    self._ready[key].set()
                elif kind == proto.BROKEN:
                    self._broken[key] = message[1:].decode(errors="replace").strip().splitlines()[-1]
                    self._ready[key].set()
            elif ready:
                break
        self._on_death(lane, gen, stage, proc)

    def _on_done(self, lane: Lane, gen: int, message: bytes) -> None:
        slots, peak = proto.unpack_done(message)
        results = []
        with self._lock:
            if lane.gen != gen:
                return
            lane.peak_mib = max(lane.peak_mib, peak)
            for slot in slots:
                req = lane.inflight.pop(slot, None)
                lane.free.append(slot)
                if req is not None:
                    results.append((req, lane.read_slot(slot)))
        for req, out in results:
            if req.key is not None:
                self._cache.put(req.key, out)
            settle(req.future, out)
        self._pump()

    def _on_fail(self, lane: Lane, gen: int, stage: int, message: bytes) -> None:
        slots, text = proto.unpack_fail(message)
        with self._lock:
            if lane.gen != gen:
                return
            reqs = [lane.inflight.pop(slot, None) for slot in slots]
            lane.free.extend(slots)
            index = lane.stages[stage].spec.index
        error = EngineError(f"engine: the model raised in shard {index} on this request: {text}")
        for req in reqs:
            if req is not None:
                fail(req.future, error)
        self._pump()

    def _on_death(self, lane: Lane, gen: int, stage: int, proc: Any) -> None:
        proc.join(1.0)
        index = lane.stages[stage].spec.index
        doomed: list[Request] = []
        with self._lock:
            if self._closed or lane.gen != gen:
                return
            if not lane.live:  # died while starting: let the waiter report it
                self._broken.setdefault((lane.index, gen, stage), f"exited with code {proc.exitcode} while starting")
                for s in range(len(lane.stages)):
                    self._ready[(lane.index, gen, s)].set()
                return
            lane.live, lane.gen = False, gen + 1
            self._restarts += 1
            retry = []
            for req in lane.inflight.values():
                req.crashed_pids.append(proc.pid)
                if req.future.done():
                    continue
                (doomed if req.attempts >= 1 else retry).append(req)
                req.attempts += 1
            lane.inflight.clear()
            lane.free = list(range(lane.slots - 1, -1, -1))
            self._pending.extendleft(reversed(retry))
            self._spawn(self._relaunch, f"lepton-relaunch-{lane.index}", lane, lane.gen)
        for req in doomed:
            fail(req.future, ShardCrashedError(
                f"engine: shard {index} died (exit code {proc.exitcode}) while serving this request, after it "
                f"had already been retried once (shard pids {req.crashed_pids}). The model most likely "
                "crashes on this input; run it in-process to see why"))
        self._pump()

    def _relaunch(self, lane: Lane, gen: int) -> None:
        lane.stop(kill=True, timeout=2.0)
        with self._lock:
            if self._closed or lane.gen != gen:
                return
            self._arm(lane)
        lane.launch(self._ctx, self._read)
        problem = self._await_ready(lane)
        orphans: list[Request] = []
        with self._lock:
            if self._closed:
                problem = "closed"
            elif problem is None:
                lane.live = True
            elif not any(other.live for other in self._lanes):
                orphans = list(self._pending)
                self._pending.clear()
        if problem:
            lane.stop(kill=True)
        for req in orphans:
            fail(req.future, ShardCrashedError(
                f"engine: shard of lane {lane.index} died and could not be restarted: {problem}"))
        self._pump()

    def _watch(self) -> None:
        """Fail requests past their deadline (every wait has a timeout)."""
        while not self._closed:
            time.sleep(_TICK_S)
            now = time.monotonic()
            with self._lock:
                late = [r for r in self._pending if r.deadline < now and not r.future.done()]
                for lane in self._lanes:
                    late.extend(r for r in lane.inflight.values() if r.deadline < now and not r.future.done())
            for req in late:
                fail(req.future, self._timeout_error(f"lane {req.lane}" if req.lane >= 0 else "waiting for a slot"))

    # -- introspection ---------------------------------------------------------------------
    def pids(self) -> list[int]:
        """The parent pid and every live shard pid (what the memory sampler sums)."""
        return [os.getpid()] + [pid for lane in list(self._lanes) for pid in lane.pids()]

    @property
    def device_memory_mb(self) -> float | None:
        """Peak CUDA memory reported by the shards, summed over lanes (None on CPU)."""
        peaks = [lane.peak_mib for lane in self._lanes if lane.peak_mib >= 0]
        return sum(peaks) if peaks else None

    def stats(self) -> EngineStats:
        """A snapshot: requests, cache hits, per-lane queue depth, restarts, core plan, pids.

        Example:
            >>> eng.stats().restarts  # doctest: +SKIP
            0
        """
        with self._lock:
            depth = [len(lane.inflight) for lane in self._lanes]
            pending = len(self._pending)
            requests, hits, restarts = self._requests, self._hits, self._restarts
        return EngineStats(
            requests=requests, cache_hits=hits, queue_depth=depth, restarts=restarts,
            core_plan={i: list(cores) for i, cores in enumerate(self._core_plan)}, pids=self.pids(),
            pending=pending, device_memory_mb=self.device_memory_mb,
        )
