"""How busy the host was with work that is not ours during a measured window.

A window measured while another process burns CPU records that process's share as the layout's
own slowness. This module counts, per window, the CPU time of every task on the host outside the
measured process tree (``foreign_load``) and the hypervisor's steal time, both in cores
(1.0 = one core busy for the whole window).

Per-task run time comes from ``/proc/<pid>/task/<tid>/schedstat`` (nanoseconds; ``/proc/stat``
ticks at 100 Hz would make a 0.2 s window's estimate coarser than the 10%-of-a-core threshold).
A snapshot of about 100 tasks costs 1.5-2 ms, taken only at window edges, never inside one.
Steal is read from ``/proc/stat``. A task that started during the window counts with its whole
run time; one that ended during it is missed (an undercount, never an overcount).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["NoiseMeter", "WindowLoad", "tree_pids"]

_PROC = Path("/proc")


def _task_times() -> dict[tuple[int, int], int]:
    """``{(pid, tid): ns on CPU}`` for every task on the host that can be read."""
    out: dict[tuple[int, int], int] = {}
    try:
        pids = [int(p) for p in os.listdir(_PROC) if p.isdigit()]
    except OSError:
        return out
    for pid in pids:
        try:
            tids = os.listdir(_PROC / str(pid) / "task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(_PROC / str(pid) / "task" / tid / "schedstat", "rb") as fh:
                    out[(pid, int(tid))] = int(fh.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
    return out


def _steal_ticks() -> int:
    try:
        with open(_PROC / "stat", "rb") as fh:
            fields = fh.readline().split()
        return int(fields[8]) if len(fields) > 8 else 0
    except (OSError, ValueError):
        return 0


def tree_pids(root: int) -> list[int]:
    """``root`` and every descendant (the measured process tree)."""
    import psutil

    try:
        proc = psutil.Process(root)
        return [root, *(c.pid for c in proc.children(recursive=True))]
    except psutil.Error:
        return [root]


@dataclass(frozen=True)
class WindowLoad:
    """CPU use during one window, in cores: ours (the measured tree), foreign, steal."""

    wall_s: float
    tree: float
    foreign: float
    steal: float

    @property
    def outside(self) -> float:
        """What the layout competed with: foreign tasks plus the hypervisor's steal."""
        return self.foreign + self.steal


class NoiseMeter:
    """Bracket a window: ``start()`` before, ``stop()`` after, returns a :class:`WindowLoad`.

    ``tree`` is called at both edges, so shards restarted in between are still counted as ours.

    Example:
        >>> meter = NoiseMeter(lambda: [os.getpid()])
        >>> meter.start()
        >>> load = meter.stop()
        >>> load.foreign >= 0.0
        True
    """

    def __init__(self, tree: Callable[[], Iterable[int]]) -> None:
        self._tree = tree
        self._start: dict[tuple[int, int], int] = {}
        self._steal0 = 0
        self._t0 = 0.0

    def start(self) -> None:
        self._start = _task_times()
        self._steal0 = _steal_ticks()
        self._t0 = time.perf_counter()

    def stop(self) -> WindowLoad:
        wall = max(time.perf_counter() - self._t0, 1e-9)
        end = _task_times()
        steal = (_steal_ticks() - self._steal0) / os.sysconf("SC_CLK_TCK")
        ours = set(self._tree())
        ours_ns = foreign_ns = 0
        for key, ns in end.items():
            used = ns - self._start.get(key, 0)
            if used <= 0:
                continue
            if key[0] in ours:
                ours_ns += used
            else:
                foreign_ns += used
        return WindowLoad(
            wall_s=wall, tree=ours_ns / 1e9 / wall, foreign=foreign_ns / 1e9 / wall, steal=max(0.0, steal) / wall
        )
