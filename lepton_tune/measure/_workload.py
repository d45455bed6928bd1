"""Request generators: closed loop (c requests in flight) and open loop (a fixed arrival rate)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from lepton_tune.engine import Engine

__all__ = ["WindowResult", "closed_loop", "open_loop"]


@dataclass(frozen=True)
class WindowResult:
    """Latencies (ms, one per request), the wall time of one window and the load generator's CPU time."""

    latencies_ms: np.ndarray
    wall_s: float
    client_cpu_s: float = 0.0

    @property
    def throughput(self) -> float:
        return len(self.latencies_ms) / self.wall_s if self.wall_s > 0 else 0.0


def closed_loop(engine: Engine, images: np.ndarray, *, requests: int, concurrency: int, timeout: float) -> WindowResult:
    """Keep ``concurrency`` requests in flight until ``requests`` have completed.

    Each client thread submits one image, waits for its result, and submits the next, so the
    latency of a request is exactly submit-to-result.
    """
    latencies = np.zeros(requests)
    counter = iter(range(requests))
    lock = threading.Lock()
    errors: list[BaseException] = []
    cpu: list[float] = []

    def client() -> None:
        cpu0 = time.thread_time()
        try:
            serve()
        finally:
            cpu.append(time.thread_time() - cpu0)

    def serve() -> None:
        while not errors:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            image = images[i % len(images)]
            start = time.perf_counter()
            try:
                engine.submit(image).result(timeout=timeout)
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller thread
                errors.append(exc)
                return
            latencies[i] = (time.perf_counter() - start) * 1000.0

    threads = [threading.Thread(target=client, daemon=True) for _ in range(min(concurrency, requests))]
    wall_start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - wall_start
    if errors:
        raise errors[0]
    return WindowResult(latencies, wall, sum(cpu))


def open_loop(engine: Engine, images: np.ndarray, *, requests: int, rate: float, timeout: float) -> WindowResult:
    """Send ``requests`` at ``rate`` per second regardless of answers.

    Latency counts from the *scheduled* send time, so a backed-up engine is not hidden
    (no coordinated omission).
    """
    latencies = np.zeros(requests)
    done = threading.Semaphore(0)
    futures: list[Any] = []
    cpu0 = time.thread_time()
    wall_start = time.perf_counter()
    for i in range(requests):
        scheduled = wall_start + i / rate
        delay = scheduled - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        future = engine.submit(images[i % len(images)])

        def finished(_f: Any, i: int = i, scheduled: float = scheduled) -> None:
            latencies[i] = (time.perf_counter() - scheduled) * 1000.0
            done.release()

        future.add_done_callback(finished)
        futures.append(future)
    for future in futures:
        future.result(timeout=timeout)
    for _ in futures:
        done.acquire(timeout=timeout)
    return WindowResult(latencies, time.perf_counter() - wall_start, time.thread_time() - cpu0)
