"""What runs inside a shard process: apply the core plan, load the model, serve slot batches."""

from __future__ import annotations

import os
import time
import traceback
import warnings
from collections import deque
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait

import torch

from lepton_tune.engine import _protocol as proto
from lepton_tune.engine._lifetime import _alive, die_with_parent
from lepton_tune.engine._parcel import Parcel, unwrap
from lepton_tune.engine._runtime import Runner, build_runner

__all__ = ["StageSpec", "shard_main"]

_WATCH_S = 0.5


@dataclass(frozen=True)
class StageSpec:
    """Everything a shard needs besides its module, connections and pools."""

    index: int
    stage: int
    stages: int
    cores: tuple[int, ...] | None
    threads: int
    batch_size: int
    max_wait_ms: float
    precision: str
    runtime: str
    device: str
    private_weights: bool
    parent_pid: int


def _apply_cores(spec: StageSpec) -> None:
    """Pin and size the thread pools before any torch work happens in this process."""
    if spec.cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, spec.cores)
    torch.set_num_threads(spec.threads)
    try:
        torch.set_num_interop_threads(spec.threads)
    except RuntimeError:  # already set once in this process; intra-op threads still apply
        pass


def shard_main(
    spec: StageSpec,
    holder: list[Parcel],
    conn: Connection,
    upstream: Connection | None,
    downstream: Connection | None,
    in_pool: torch.Tensor,
    out_pool: torch.Tensor,
) -> None:
    """Serve until the parent says quit, a pipe closes, or the parent dies.

    ``holder`` is a one-item list whose parcel is popped, so that nothing else keeps the shared
    weights mapped once the runner cloned them. ``conn`` is the duplex pipe to the parent; a pipeline stage after the first reads its work
    from ``upstream`` and every stage but the last writes its slots to ``downstream``.
    A shard ends within a second of its owner's death even in the middle of a batch or a compile
    (``die_with_parent``: the pipe's hang-up, the forkserver's death signal, the owner's pid).
    """
    die_with_parent(conn, parent_pid=spec.parent_pid)
    try:
        _apply_cores(spec)
        with warnings.catch_warnings():  # torch.ao's deprecation chatter when int8 modules load
            warnings.simplefilter("ignore")
            module = unwrap(holder.pop())
        run = build_runner(
            module,
            precision=spec.precision,
            runtime=spec.runtime,
            device=spec.device,
            cast_input=spec.stage == 0,
            private_weights=spec.private_weights,
            threads=spec.threads,
            batch_size=spec.batch_size,
        )
        del module
        staging = torch.empty((spec.batch_size, *in_pool.shape[1:]), dtype=in_pool.dtype)
        run(staging[:1].zero_())  # warm-up; for runtime compile this is the (one) compilation
        if spec.runtime != "eager" and spec.batch_size > 1:
            run(staging.zero_())
    except BaseException:  # noqa: BLE001 - any start failure is reported to the parent, which raises it
        conn.send_bytes(proto.BROKEN + traceback.format_exc().encode())
        return
    conn.send_bytes(proto.READY)
    try:
        _serve(spec, run, conn, upstream, downstream, in_pool, out_pool, staging)
    except (EOFError, BrokenPipeError, ConnectionResetError):
        return


def _serve(
    spec: StageSpec,
    run: Runner,
    conn: Connection,
    upstream: Connection | None,
    downstream: Connection | None,
    in_pool: torch.Tensor,
    out_pool: torch.Tensor,
    staging: torch.Tensor,
) -> None:
    source = upstream if upstream is not None else conn
    watched = [source] if source is conn else [source, conn]
    backlog: deque[int] = deque()
    wait_s = spec.max_wait_ms / 1000.0
    cuda = spec.device.startswith("cuda")
    while True:
        if not backlog:
            ready = wait(watched, timeout=_WATCH_S)
            if not ready:
                if not _alive(spec.parent_pid):
                    return
                continue
            if conn in ready and source is not conn and conn.recv_bytes()[:1] == proto.QUIT:
                return
            if source not in ready:
                continue
            if not _take(source, backlog):
                return
        deadline = time.monotonic() + wait_s
        while len(backlog) < spec.batch_size:
            remaining = deadline - time.monotonic()
            if not source.poll(max(remaining, 0.0)):
                break
            if not _take(source, backlog):
                return
        slots = [backlog.popleft() for _ in range(min(spec.batch_size, len(backlog)))]
        _run_batch(spec, run, slots, conn, downstream, in_pool, out_pool, staging, cuda)


def _take(source: Connection, backlog: deque[int]) -> bool:
    message = source.recv_bytes()
    if message[:1] == proto.QUIT:
        return False
    backlog.extend(proto.unpack_slots(message))
    return True


def _run_batch(
    spec: StageSpec,
    run: Runner,
    slots: list[int],
    conn: Connection,
    downstream: Connection | None,
    in_pool: torch.Tensor,
    out_pool: torch.Tensor,
    staging: torch.Tensor,
    cuda: bool,
) -> None:
    slots = sorted(slots)  # the parent hands out ascending runs, so a batch is usually one contiguous block
    first, count = slots[0], len(slots)
    contiguous = slots[-1] - first == count - 1
    index = None if contiguous else torch.tensor(slots, dtype=torch.int64)
    try:
        if index is None:
            batch = in_pool[first : first + count]  # a view of the shared pool: no copy
        else:
            batch = torch.index_select(in_pool, 0, index, out=staging[:count])
        out = run(batch)
        want = (count, *out_pool.shape[1:])
        if tuple(out.shape) != want:
            raise ValueError(f"stage {spec.stage} output shape {tuple(out.shape)}, expected {want}")
        if index is None:
            out_pool[first : first + count].copy_(out)
        else:
            out_pool.index_copy_(0, index, out.to(out_pool.dtype))
    except Exception as exc:  # noqa: BLE001 - the model raised on this batch: fail these requests, keep serving
        conn.send_bytes(proto.pack_fail(slots, f"{type(exc).__name__}: {exc}"))
        return
    if downstream is not None:
        downstream.send_bytes(proto.pack_slots(proto.RUN, slots))
    else:
        peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else -1.0
        conn.send_bytes(proto.pack_done(slots, peak))
