"""The parent's side of the shards: slot assignment, reader threads, restarts, deadlines."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from multiprocessing.connection import Connection, wait
from typing import Any

import numpy as np

from lepton_tune.engine import _protocol as proto
from lepton_tune.engine._lane import Lane
from lepton_tune.engine._request import Request, fail, timeout_error, watch_deadlines
from lepton_tune.exceptions import EngineError, EngineTimeoutError, ShardCrashedError

__all__ = ["Dispatcher"]


class Dispatcher:
    """Moves requests into lane slots and results back; restarts lanes whose shard died.

    Every mutation of lanes and the pending queue happens under ``lock``; futures are settled
    outside it. ``deliver(request, output)`` is called for each finished request.
    """

    def __init__(
        self, ctx: Any, *, timeout_s: float, start_timeout_s: float, deliver: Callable[[Request, np.ndarray], None]
    ) -> None:
        self.ctx, self.timeout_s, self.start_timeout_s, self.deliver = ctx, timeout_s, start_timeout_s, deliver
        self.lock = threading.Lock()
        self.lanes: list[Lane] = []
        self.pending: deque[Request] = deque()
        self.restarts = 0
        self.closed = False
        self._ready: dict[tuple[int, int, int], threading.Event] = {}
        self._broken: dict[tuple[int, int, int], str] = {}
        self._threads: list[threading.Thread] = []

    # -- start and stop --------------------------------------------------------------------
    def start(self, lanes: list[Lane]) -> None:
        """Launch every lane and wait until each shard says it is ready.

        Raises:
            EngineError: a shard failed to load its model or did not answer in time.
        """
        self.lanes = lanes
        for lane in lanes:
            self._arm(lane)
            lane.launch(self.ctx, self._read)
        for lane in lanes:
            problem = self._await_ready(lane)
            if problem:
                raise EngineError(f"engine: shard of lane {lane.index} failed to start: {problem}")
            lane.live = True
        self._spawn(self._watch, "lepton-engine-watch")

    def _arm(self, lane: Lane) -> None:
        for s in range(len(lane.stages)):
            self._ready[(lane.index, lane.gen, s)] = threading.Event()

    def _await_ready(self, lane: Lane) -> str | None:
        limit = time.monotonic() + self.start_timeout_s
        for s in range(len(lane.stages)):
            key = (lane.index, lane.gen, s)
            if not self._ready[key].wait(max(0.0, limit - time.monotonic())):
                return f"no ready signal within {self.start_timeout_s:g} s"
            if key in self._broken:
                return self._broken[key]
        return None

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def close(self) -> list[Request]:
        """Stop every lane and join the helper threads; return the requests never answered."""
        with self.lock:
            if self.closed:
                return []
            self.closed = True
            for event in self._ready.values():  # wake a relaunch waiting for a shard
                event.set()
            leftovers = list(self.pending)
            self.pending.clear()
            for lane in self.lanes:
                leftovers.extend(lane.inflight.values())
                lane.inflight.clear()
                lane.live = False
        for lane in self.lanes:
            lane.stop()
        me = threading.current_thread()
        for thread in self._threads:
            if thread is not me:
                thread.join(5.0)
        return leftovers

    # -- requests --------------------------------------------------------------------------
    def enqueue(self, requests: list[Request]) -> None:
        """Queue requests and hand out free slots."""
        with self.lock:
            self.pending.extend(requests)
        self.pump()

    def pump(self) -> None:
        """Give waiting requests free slots (least loaded live lane first) and send them."""
        sends: dict[Lane, list[int]] = {}
        with self.lock:
            open_lanes = [lane for lane in self.lanes if lane.live and lane.free]
            while self.pending and open_lanes:
                req = self.pending.popleft()
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

    def timeout_error(self, where: str) -> EngineTimeoutError:
        """The error for a request past its deadline."""
        return timeout_error(self.timeout_s, where, "lower the load, or check that the shards are alive")

    def _watch(self) -> None:
        watch_deadlines(self, "waiting for a slot")

    # -- what the shards say (one reader thread per shard process) --------------------------
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
        with self.lock:
            if lane.gen != gen:
                return
            lane.peak_mib = max(lane.peak_mib, peak)
            for slot in slots:
                req = lane.inflight.pop(slot, None)
                if req is not None:
                    results.append((req, lane.read_slot(slot)))
            lane.free.extend(sorted(slots, reverse=True))  # popped in ascending runs: contiguous batches
        for req, out in results:
            self.deliver(req, out)
        self.pump()

    def _on_fail(self, lane: Lane, gen: int, stage: int, message: bytes) -> None:
        slots, text = proto.unpack_fail(message)
        with self.lock:
            if lane.gen != gen:
                return
            reqs = [lane.inflight.pop(slot, None) for slot in slots]
            lane.free.extend(slots)
        error = EngineError(
            f"engine: the model raised in shard {lane.stages[stage].spec.index} on this request: {text}"
        )
        for req in reqs:
            if req is not None:
                fail(req.future, error)
        self.pump()

    def _on_death(self, lane: Lane, gen: int, stage: int, proc: Any) -> None:
        proc.join(1.0)
        doomed: list[Request] = []
        with self.lock:
            if self.closed or lane.gen != gen:
                return
            if not lane.live:  # died while starting: the waiter reports it
                self._broken.setdefault((lane.index, gen, stage), f"exited with code {proc.exitcode} while starting")
                for s in range(len(lane.stages)):
                    self._ready[(lane.index, gen, s)].set()
                return
            lane.live, lane.gen = False, gen + 1
            self.restarts += 1
            retry: list[Request] = []
            for req in lane.inflight.values():
                req.crashed_pids.append(proc.pid)
                if not req.future.done():
                    (doomed if req.attempts >= 1 else retry).append(req)
                    req.attempts += 1
            lane.inflight.clear()
            lane.free = list(range(lane.slots - 1, -1, -1))
            self.pending.extendleft(reversed(retry))
            self._spawn(self._relaunch, f"lepton-relaunch-{lane.index}", lane, lane.gen)
        for req in doomed:
            fail(
                req.future,
                ShardCrashedError(
                    f"engine: shard {lane.stages[stage].spec.index} died (exit code {proc.exitcode}) while serving "
                    f"this request, after it had already been retried once (shard pids {req.crashed_pids}). "
                    "The model most likely crashes on this input; run it in-process to see why"
                ),
            )
        self.pump()

    def _relaunch(self, lane: Lane, gen: int) -> None:
        lane.stop(kill=True, timeout=2.0)
        with self.lock:
            if self.closed or lane.gen != gen:
                return
            self._arm(lane)
        lane.launch(self.ctx, self._read)
        problem = self._await_ready(lane)
        orphans: list[Request] = []
        with self.lock:
            if self.closed:
                problem = "closed"
            elif problem is None:
                lane.live = True
            elif not any(other.live for other in self.lanes):
                orphans = list(self.pending)
                self.pending.clear()
        if problem:
            lane.stop(kill=True)
        for req in orphans:
            fail(
                req.future,
                ShardCrashedError(f"engine: shard of lane {lane.index} died and could not be restarted: {problem}"),
            )
        self.pump()
