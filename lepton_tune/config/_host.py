"""Host facts the configuration resolves against (``auto`` bounds, constraint names)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

__all__ = ["HostFacts", "host_facts", "usable_cores"]


def usable_cores() -> list[int]:
    """Return the CPU ids this process may run on, in ascending order."""
    if hasattr(os, "sched_getaffinity"):
        return sorted(os.sched_getaffinity(0))
    return list(range(os.cpu_count() or 1))


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / (1024 * 1024)
    except OSError:
        pass
    return 0.0


def _gpu_count() -> int:
    """Count NVIDIA GPUs without importing torch (config must stay light)."""
    gpus = Path("/proc/driver/nvidia/gpus")
    if gpus.is_dir():
        return sum(1 for _ in gpus.iterdir())
    return 0


@dataclass(frozen=True)
class HostFacts:
    """What the configuration may refer to: ``cores``, ``memory_gib`` and ``gpus``.

    Example:
        >>> facts = HostFacts(cores=2, memory_gib=24.0, gpus=0)
        >>> facts.as_names()["cores"]
        2
    """

    cores: int
    memory_gib: float
    gpus: int

    def as_names(self) -> dict[str, float | int]:
        """Names usable inside constraint expressions."""
        return {"cores": self.cores, "memory_gib": self.memory_gib, "gpus": self.gpus}


def host_facts() -> HostFacts:
    """Read this host's facts (usable cores come from ``os.sched_getaffinity``)."""
    return HostFacts(cores=len(usable_cores()), memory_gib=round(_memory_gib(), 2), gpus=_gpu_count())
