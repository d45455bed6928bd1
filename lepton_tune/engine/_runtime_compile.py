"""Runtime ``compile``: torch.compile (inductor) with freezing, compiled once per shard at start-up.

Batch sizes: the graph is compiled for exactly one shape, ``[batch_size, *image]``
(``dynamic=False``), and every batch is padded with zeros up to ``batch_size`` (the padded rows'
outputs are dropped). So a shard compiles once, during its start-up warm-up (the time lands in
``Engine.startup_seconds``), and never at a request; the price is that a partial batch costs a
full one. Inductor's on-disk cache makes the second shard and a restarted shard compile faster.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable

import torch

__all__ = ["compile_forward", "compiler_missing"]


def compiler_missing() -> str | None:
    """Why inductor cannot build CPU kernels here (no C++ compiler), or None."""
    if any(shutil.which(cxx) for cxx in ("g++", "c++", "clang++")):
        return None
    return "runtime 'compile' needs a C++ compiler for inductor's CPU kernels (g++/clang++), none found on PATH"


def compile_forward(module: torch.nn.Module, batch_size: int | None) -> Callable[[torch.Tensor], torch.Tensor]:
    """``forward(batch)`` through the compiled module; ``batch_size`` None compiles per shape seen."""
    import torch._inductor.config as inductor_config

    inductor_config.compile_threads = 1  # no compile worker processes inside a shard
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # "No CUDA runtime" on CPU hosts
    compiled = torch.compile(module, backend="inductor", dynamic=False, options={"freezing": True})
    if batch_size is None:
        return compiled
    pad: list[torch.Tensor] = []

    def forward(batch: torch.Tensor) -> torch.Tensor:
        n = batch.shape[0]
        if n == batch_size:
            out: torch.Tensor = compiled(batch)
            return out
        if n > batch_size:
            raise ValueError(f"batch of {n} exceeds the compiled batch_size {batch_size}")
        if not pad or pad[0].dtype != batch.dtype or pad[0].device != batch.device:
            pad[:] = [torch.zeros((batch_size, *batch.shape[1:]), dtype=batch.dtype, device=batch.device)]
        full = pad[0]
        full[:n].copy_(batch)
        padded: torch.Tensor = compiled(full)
        return padded[:n]

    return forward
