"""Peak summed PSS of a set of processes, sampled in a background thread that measures its own CPU cost.

Reading ``/proc/<pid>/smaps_rollup`` makes the kernel walk the page tables: about 10 ms of CPU per
torch process here, so a sampler never runs inside a timed window (see ``_protocol``).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

__all__ = ["PssSampler", "pss_mib", "rss_mib"]


def _pss_kib(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except (OSError, ProcessLookupError):
        return 0
    for line in text.splitlines():
        if line.startswith("Pss:"):
            return int(line.split()[1])
    return 0


def rss_mib(pids: Iterable[int]) -> float:
    """Summed resident set size of ``pids`` in MiB from ``/proc/<pid>/statm``: cheap, counts shared pages in full."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = 0
    for pid in pids:
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * page
        except (OSError, ValueError, IndexError):
            continue
    return total / 2**20


def pss_mib(pids: Iterable[int]) -> float:
    """Summed proportional set size of ``pids`` in MiB (shared pages count once overall)."""
    return sum(_pss_kib(pid) for pid in pids) / 1024.0


class PssSampler:
    """Sample the summed PSS of ``pids()`` at ``hz`` until stopped; keep the peak.

    ``pids`` is called at every sample, so restarted shards are followed.

    Example:
        >>> import os
        >>> with PssSampler(lambda: [os.getpid()], hz=50) as s:
        ...     time.sleep(0.1)
        >>> s.peak_mib > 0
        True
    """

    def __init__(self, pids: Callable[[], list[int]], *, hz: float = 50.0) -> None:
        self._pids = pids
        self._period = 1.0 / hz
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.peak_mib = 0.0
        self.samples = 0
        self.cpu_s = 0.0
        self.wall_s = 0.0
        self._t0 = 0.0

    def _run(self) -> None:
        cpu0 = time.thread_time()
        next_at = time.perf_counter()
        while not self._stop.is_set():
            self.sample()
            next_at += self._period
            self._stop.wait(max(0.0, next_at - time.perf_counter()))
        self.cpu_s = time.thread_time() - cpu0

    @property
    def cpu_share(self) -> float:
        """CPU the sampling thread used, in cores over the sampled time (its own cost)."""
        return self.cpu_s / self.wall_s if self.wall_s > 0 else 0.0

    @property
    def achieved_hz(self) -> float:
        return self.samples / self.wall_s if self.wall_s > 0 else 0.0

    def sample(self) -> float:
        value = pss_mib(self._pids())
        self.peak_mib = max(self.peak_mib, value)
        self.samples += 1
        return value

    def start(self) -> PssSampler:
        self._t0 = time.perf_counter()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> float:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        self.wall_s = time.perf_counter() - self._t0
        self.sample()
        return self.peak_mib

    def __enter__(self) -> PssSampler:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
