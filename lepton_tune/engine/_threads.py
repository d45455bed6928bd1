"""``isolation: thread``: K lanes as threads of the serving process, for runtimes that release the GIL.

A process shard pays for isolation on every request: the image is copied into a shared slot, its
slot index crosses a pipe and its result comes back the same way. ONNX Runtime releases the GIL
for a whole ``run`` call and keeps its thread pool per session, so K threads, each with its own
session (and its own cores when pinned), run in parallel without any of that hand-off. The price
is isolation: a crash in the runtime ends the serving process, and there is nothing to restart.

The lanes share one queue (an idle lane takes the next batch); each gathers up to ``batch_size``
requests, waiting at most ``max_wait_ms`` for them. A model error fails that batch's requests and
the lane serves on. Requests past their deadline are failed by a watch thread.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from lepton_tune.config import EngineConfig
from lepton_tune.engine._request import Request, fail, timeout_error, watch_deadlines
from lepton_tune.engine._runtime import build_runner
from lepton_tune.exceptions import EngineError, EngineTimeoutError

__all__ = ["ThreadDispatcher"]


@dataclass(eq=False)
class ThreadLane:
    """One serving thread and the requests of the batch it is running."""

    index: int
    cores: tuple[int, ...] | None
    inflight: dict[int, Request] = field(default_factory=dict)
    peak_mib: float = -1.0
    thread: threading.Thread | None = None
    problem: str | None = None
    ready: threading.Event = field(default_factory=threading.Event)

    def pids(self) -> list[int]:
        """No processes of its own: the lane runs in the serving process."""
        return []


class ThreadDispatcher:
    """The same surface as the process Dispatcher (enqueue, close, lanes, lock, pending, restarts)."""

    restarts = 0  # a thread lane is never restarted: its failure is the process's

    def __init__(
        self,
        model: torch.nn.Module,
        config: EngineConfig,
        core_plan: list[list[int]],
        *,
        timeout_s: float,
        start_timeout_s: float,
        deliver: Callable[[Request, np.ndarray], None],
    ) -> None:
        self.model, self.config, self.timeout_s, self.start_timeout_s = model, config, timeout_s, start_timeout_s
        self.deliver = deliver
        self.lock = threading.Lock()
        self._work = threading.Condition(self.lock)  # lanes with nothing to do wait here
        self._full = threading.Condition(self.lock)  # a lane filling its batch waits here, woken when it is full
        self.pending: deque[Request] = deque()
        self.closed = False
        self.lanes = [
            ThreadLane(index=i, cores=tuple(cores) if config.pin else None) for i, cores in enumerate(core_plan)
        ]
        self._shapes: list[tuple[int, ...]] = []
        self._watcher: threading.Thread | None = None

    # -- start and stop --------------------------------------------------------------------
    def start(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Start every lane (each builds its own runner) and return one output's shape.

        Raises:
            EngineError: a lane failed to build its runner or to run a zero batch in time.
        """
        for lane in self.lanes:
            lane.thread = threading.Thread(
                target=self._serve, args=(lane, shape), daemon=True, name=f"lepton-lane-{lane.index}"
            )
            lane.thread.start()
        limit = time.monotonic() + self.start_timeout_s
        for lane in self.lanes:
            if not lane.ready.wait(max(0.0, limit - time.monotonic())):
                raise EngineError(f"engine: thread lane {lane.index} did not start within {self.start_timeout_s:g} s")
            if lane.problem:
                raise EngineError(f"engine: thread lane {lane.index} failed to start: {lane.problem}")
        self._watcher = threading.Thread(target=self._watch, daemon=True, name="lepton-engine-watch")
        self._watcher.start()
        return self._shapes[0]

    def close(self) -> list[Request]:
        """Stop the lanes (a running batch finishes first) and return the requests never answered."""
        with self.lock:
            if self.closed:
                return []
            self.closed = True
            leftovers = list(self.pending)
            self.pending.clear()
            for lane in self.lanes:
                leftovers.extend(lane.inflight.values())
            self._work.notify_all()
            self._full.notify_all()
        me = threading.current_thread()
        for thread in [lane.thread for lane in self.lanes] + [self._watcher]:
            if thread is not None and thread is not me:
                thread.join(5.0)
        return leftovers

    # -- requests --------------------------------------------------------------------------
    def enqueue(self, requests: list[Request]) -> None:
        """Queue requests for the next free lane."""
        with self.lock:
            self.pending.extend(requests)
            self._work.notify(len(requests))
            if len(self.pending) >= self.config.batch_size:
                self._full.notify()

    def timeout_error(self, where: str) -> EngineTimeoutError:
        """The error for a request past its deadline."""
        return timeout_error(self.timeout_s, where, "or lower the load")

    def _watch(self) -> None:
        watch_deadlines(self, "waiting for a lane")

    # -- one lane --------------------------------------------------------------------------
    def _prepare(self, lane: ThreadLane, shape: tuple[int, ...]) -> Callable[[torch.Tensor], torch.Tensor]:
        if lane.cores is not None and hasattr(os, "sched_setaffinity"):
            os.sched_setaffinity(0, lane.cores)  # this thread only; the runtime's own threads inherit it
        cfg = self.config
        run = build_runner(
            self.model,
            precision=cfg.precision,
            runtime=cfg.runtime,
            device=cfg.device,
            threads=cfg.threads_per_shard,
            batch_size=cfg.batch_size,
        )
        # numpy zeros, not torch.zeros: a torch op in this thread would start an OpenMP team for it,
        # whose idle workers slow every torch op of the serving process's other threads (measured 2.6x)
        out = run(torch.from_numpy(np.zeros((1, *shape), np.float32)))
        if cfg.batch_size > 1:
            run(torch.from_numpy(np.zeros((cfg.batch_size, *shape), np.float32)))
        self._shapes.append(tuple(out.shape[1:]))
        return run

    def _serve(self, lane: ThreadLane, shape: tuple[int, ...]) -> None:
        try:
            run = self._prepare(lane, shape)
        except Exception as exc:  # noqa: BLE001 - reported by start()
            lane.problem = f"{type(exc).__name__}: {exc}"
            lane.ready.set()
            return
        lane.ready.set()
        staging = np.empty((self.config.batch_size, *shape), dtype=np.float32)
        while True:
            batch = self._take(lane)
            if batch is None:
                return
            self._run(lane, run, batch, staging)

    def _take(self, lane: ThreadLane) -> list[Request] | None:
        """Wait for work and gather up to batch_size live requests (None: the engine closed)."""
        size, wait_s = self.config.batch_size, self.config.max_wait_ms / 1000.0
        with self.lock:
            while True:
                while not self.pending and not self.closed:
                    self._work.wait()
                if self.closed:
                    return None
                deadline = time.monotonic() + wait_s
                while len(self.pending) < size and not self.closed:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._full.wait(remaining)
                batch: list[Any] = []
                while self.pending and len(batch) < size:
                    req = self.pending.popleft()
                    if not req.future.done():
                        req.lane = lane.index
                        batch.append(req)
                if batch:
                    lane.inflight = dict(enumerate(batch))
                    return batch

    def _run(
        self, lane: ThreadLane, run: Callable[[torch.Tensor], torch.Tensor], batch: list[Request], staging: np.ndarray
    ) -> None:
        try:
            if len(batch) == 1:
                images = batch[0].image[None]
            else:
                images = staging[: len(batch)]
                for i, req in enumerate(batch):
                    images[i] = req.image
            out = run(torch.from_numpy(images)).numpy()
            if out.shape[0] != len(batch):
                raise ValueError(f"output shape {tuple(out.shape)} for a batch of {len(batch)}")
        except Exception as exc:  # noqa: BLE001 - the model raised on this batch: fail it, keep serving
            error = EngineError(
                f"engine: the model raised in thread lane {lane.index} on this request: {type(exc).__name__}: {exc}"
            )
            for req in batch:
                fail(req.future, error)
        else:
            for i, req in enumerate(batch):
                self.deliver(req, out[i].copy())
        with self.lock:
            lane.inflight = {}
