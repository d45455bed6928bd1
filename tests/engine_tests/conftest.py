"""Helpers for engine tests: reference outputs, leftover-process and /dev/shm checks."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from tests.engine_tests._nets import SHAPE, tiny_net

SHM = Path("/dev/shm")


def reference(model: torch.nn.Module, images: np.ndarray, dtype: torch.dtype | None = None) -> np.ndarray:
    """The model's outputs computed in this process."""
    x = torch.from_numpy(images)
    with torch.inference_mode():
        return model(x if dtype is None else x.to(dtype)).float().numpy()


#: Names torch (file_system strategy), Python multiprocessing and OpenMP runtimes give /dev/shm
#: entries. Other engineers' services share this host's /dev/shm, so only these are compared.
SHM_PREFIXES = ("torch_", "psm_", "sem.mp-", "pymp-", "__KMP_REGISTERED_LIB")


def shm_entries() -> set[str]:
    """The /dev/shm entries an engine could leave behind."""
    if not SHM.is_dir():
        return set()
    return {p.name for p in SHM.iterdir() if p.name.startswith(SHM_PREFIXES)}


def gone(pids: list[int], *, within: float = 10.0) -> bool:
    """True once none of ``pids`` is a live (non-zombie) process."""
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        alive = []
        for pid in pids:
            try:
                if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                    alive.append(pid)
            except psutil.NoSuchProcess:
                pass
        if not alive:
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def images() -> np.ndarray:
    return np.random.default_rng(0).random((37, *SHAPE), dtype=np.float32)


@pytest.fixture
def net() -> torch.nn.Module:
    return tiny_net()


@pytest.fixture
def no_leftovers():
    """Fail if a test leaves new /dev/shm entries behind; yields nothing."""
    before = shm_entries()
    yield
    assert shm_entries() - before == set()


def usable() -> list[int]:
    return sorted(os.sched_getaffinity(0))
