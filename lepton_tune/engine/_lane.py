"""A lane: the processes that serve one stream of requests, with their slot pools.

Shards start with the forkserver method, which normally re-runs the parent's ``__main__`` in
every child. For the ``lepton-tune`` command that would import the whole CLI (optuna, mlflow,
plotly) into every shard, costing seconds and hundreds of MiB each, so a shard is started without
re-running ``__main__`` unless its pickled model refers to ``__main__`` (a class defined in the
user's script). That is the one change to multiprocessing's preparation data, made for the
starting thread only.

Replica mode has ``shards`` lanes of one stage each; pipeline mode has one lane of ``shards``
stages. A lane's slot pool holds ``pool_slots`` requests in flight: slot k of a request is used in
every pool of the lane (input, each stage boundary, output), so only slot indices travel.
"""

from __future__ import annotations

import multiprocessing.spawn
import os
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.multiprocessing as tmp

from lepton_tune.engine import _protocol as proto
from lepton_tune.engine._parcel import wrap
from lepton_tune.engine._shard import StageSpec, shard_main

if TYPE_CHECKING:
    from multiprocessing.connection import Connection

__all__ = ["Lane", "StagePlan", "mp_context"]

_PRELOAD = ["torch", "lepton_tune.engine._shard"]


_LOCAL = threading.local()
_ORIGINAL_PREPARATION = multiprocessing.spawn.get_preparation_data


def _preparation_data(name: str) -> dict[str, Any]:
    data = _ORIGINAL_PREPARATION(name)
    if getattr(_LOCAL, "skip_main", False):
        data.pop("init_main_from_path", None)
        data.pop("init_main_from_name", None)
    return data


def start_process(proc: Any, *, with_main: bool) -> None:
    """Start ``proc``; without ``with_main`` the child does not re-run ``__main__``."""
    if multiprocessing.spawn.get_preparation_data is not _preparation_data:
        multiprocessing.spawn.get_preparation_data = _preparation_data
    _LOCAL.skip_main = not with_main
    try:
        proc.start()
    finally:
        _LOCAL.skip_main = False


def mp_context(model: torch.nn.Module | None = None) -> Any:
    """The forkserver context, with torch preloaded in the server so shards start fast.

    The modules that define ``model``'s classes (torchvision's, say) are preloaded too, so that a
    shard does not spend seconds importing them to unpickle its model. The preload list only
    counts when the server starts: at the first engine of this process.
    """
    modules = sorted({type(m).__module__ for m in model.modules()}) if model is not None else []
    if any(name.endswith("._runtime_onnx") for name in modules):
        modules.append("onnxruntime")  # a missing one is skipped by the forkserver
    # openvino is never preloaded: importing it in the forkserver leaves state (a child process, thread
    # pools) that a forked shard inherits; once a shard hung in compile and the forkserver reaped a pid it
    # had not forked. Each OpenVINO shard imports it itself, after the fork.
    ctx = tmp.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD + [m for m in modules if m.split(".")[0] not in ("__main__", "torch")])
    return ctx


@dataclass
class StagePlan:
    """One stage of a lane: its module and the pool it reads from (per image shape/dtype)."""

    module: torch.nn.Module
    spec: StageSpec
    in_shape: tuple[int, ...]
    in_dtype: torch.dtype


@dataclass(eq=False)
class Lane:
    """Slot book-keeping and process management for one lane (all mutation under the engine lock)."""

    index: int
    stages: list[StagePlan]
    slots: int
    out_shape: tuple[int, ...]
    pools: list[torch.Tensor] = field(default_factory=list)
    free: list[int] = field(default_factory=list)
    inflight: dict[int, Any] = field(default_factory=dict)
    gen: int = 0
    live: bool = False
    procs: list[Any] = field(default_factory=list)
    conns: list[Connection] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)
    peak_mib: float = -1.0
    send_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        # pools[s] is what stage s reads; pools[-1] is the output. Allocated once, shared, reused.
        for plan in self.stages:
            self.pools.append(_shared(torch.zeros((self.slots, *plan.in_shape), dtype=plan.in_dtype)))
        self.pools.append(_shared(torch.zeros((self.slots, *self.out_shape), dtype=torch.float32)))
        self.in_np = self.pools[0].numpy()
        self.out_np = self.pools[-1].numpy()
        self.free = list(range(self.slots - 1, -1, -1))

    def launch(self, ctx: Any, reader: Callable[[Lane, int, int, Connection, Any], None]) -> None:
        """Start this lane's processes (generation ``self.gen``) and one reader thread per process."""
        count = len(self.stages)
        links = [ctx.Pipe(duplex=False) for _ in range(count - 1)]  # (reader end, writer end)
        child_ends = []
        parcels = [wrap(plan.module) for plan in self.stages]
        self.procs, self.conns, self.readers = [], [], []
        for s, plan in enumerate(self.stages):
            parent_end, child_end = ctx.Pipe()
            upstream = links[s - 1][0] if s > 0 else None
            downstream = links[s][1] if s < count - 1 else None
            proc = ctx.Process(
                target=shard_main,
                name=f"lepton-shard-{plan.spec.index}",
                daemon=True,
                args=(plan.spec, [parcels[s]], child_end, upstream, downstream, self.pools[s], self.pools[s + 1]),
            )
            start_process(proc, with_main=b"__main__" in parcels[s].data)
            self.procs.append(proc)
            self.conns.append(parent_end)
            child_ends.append(child_end)
        for end in child_ends + [e for pair in links for e in pair]:
            end.close()
        for s, (proc, conn) in enumerate(zip(self.procs, self.conns)):
            thread = threading.Thread(
                target=reader,
                args=(self, s, self.gen, conn, proc),
                daemon=True,
                name=f"lepton-reader-{self.stages[s].spec.index}",
            )
            thread.start()
            self.readers.append(thread)

    def send(self, slots: list[int], gen: int) -> None:
        """Hand ``slots`` to the first stage; a dead pipe is left to the reader that sees the death."""
        with self.send_lock:
            if gen != self.gen or not self.conns:
                return
            try:
                self.conns[0].send_bytes(proto.pack_slots(proto.RUN, slots))
            except OSError:
                pass

    def pids(self) -> list[int]:
        """Process ids of this lane's live processes."""
        return [p.pid for p in self.procs if p.pid is not None and p.is_alive()]

    def stop(self, *, timeout: float = 2.0, kill: bool = False) -> None:
        """Ask every stage to quit (or SIGKILL them), reap them and join the readers."""
        with self.send_lock:
            for conn in self.conns:
                if kill:
                    break
                try:
                    conn.send_bytes(proto.QUIT)
                except OSError:
                    pass
        for proc in self.procs:
            if kill and proc.is_alive():
                os.kill(proc.pid, signal.SIGKILL)
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout)
        me = threading.current_thread()
        for thread in self.readers:
            if thread is not me:
                thread.join(timeout)
        with self.send_lock:
            for conn in self.conns:
                conn.close()
            self.conns = []

    def read_slot(self, slot: int) -> np.ndarray:
        """A private copy of an output slot."""
        copy: np.ndarray = self.out_np[slot].copy()
        return copy


def _shared(tensor: torch.Tensor) -> torch.Tensor:
    """``tensor`` moved to shared memory (torch's ``share_memory_`` is untyped)."""
    shared: torch.Tensor = tensor.share_memory_()  # type: ignore[no-untyped-call]
    return shared
