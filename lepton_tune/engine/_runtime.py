"""The runtime seam: turn (module, precision, runtime, device) into a callable on a batch."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import torch

from lepton_tune.config import RUNTIMES
from lepton_tune.exceptions import EngineError

__all__ = ["Runner", "build_runner", "input_dtype", "runtime_support"]

Runner = Callable[[torch.Tensor], torch.Tensor]

_SUPPORTED = ("eager",)


def runtime_support(runtime: str, precision: str = "fp32", mode: str = "replica") -> str | None:
    """Return why ``runtime`` cannot serve here, or None if it can.

    Example:
        >>> runtime_support("eager") is None
        True
    """
    if runtime not in RUNTIMES:
        return f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}"
    if runtime not in _SUPPORTED:
        return (f"runtime {runtime!r} is not supported yet by this engine (only 'eager' is); "
                "use runtime: eager")
    return None


def input_dtype(precision: str) -> torch.dtype | None:
    """The dtype fp32 inputs are cast to before the model sees them (None: leave as fp32)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _own_weights(module: torch.nn.Module) -> None:
    """Copy every parameter and buffer into this process's private memory."""
    with torch.no_grad():
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            tensor.data = tensor.data.clone()


def build_runner(module: torch.nn.Module, *, precision: str, runtime: str = "eager", device: str = "cpu",
                 cast_input: bool = True, private_weights: bool = False) -> Runner:
    """Prepare ``module`` to serve and return ``run(batch) -> output tensor``.

    Args:
        module: the converted model (or one pipeline stage of it).
        precision: the EngineConfig precision; bf16/fp16 cast the (fp32) input first.
        runtime: only ``"eager"`` for now.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; inputs move there and outputs come back.
        cast_input: cast the input to the precision's dtype (False for later pipeline stages).
        private_weights: clone parameters and buffers (no sharing with other processes).

    Raises:
        EngineError: the runtime is not supported.

    Example:
        >>> run = build_runner(torch.nn.Linear(3, 2), precision="fp32")
        >>> run(torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """
    reason = runtime_support(runtime, precision)
    if reason:
        raise EngineError(f"engine: {reason}")
    if private_weights:
        _own_weights(module)
    module.eval()
    on_cpu = device == "cpu"
    if not on_cpu:
        module.to(device)
    cast = input_dtype(precision) if cast_input else None

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if not on_cpu:
                batch = batch.to(device, non_blocking=True)
            if cast is not None and batch.dtype == torch.float32:
                batch = batch.to(cast)
            out = module(batch)
            if not isinstance(out, torch.Tensor):
                raise EngineError(f"engine: the model returned {type(out).__name__}, expected a tensor")
            return out if on_cpu else out.cpu()

    return run
