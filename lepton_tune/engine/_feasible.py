"""Can this layout run here? One answer, used by the study (before any work) and by the engine (at start).

:func:`feasibility` checks, cheapest first: the cores the layout needs, the device, whether the
precision has kernels on it, and whether the runtime serves that precision and mode. The study
marks a point infeasible with the returned reason; ``Engine.start`` raises ``EngineError`` with it.
"""

from __future__ import annotations

import torch

from lepton_tune.config import PRECISIONS, EngineConfig
from lepton_tune.engine._runtime import runtime_support
from lepton_tune.exceptions import ModelError

__all__ = ["feasibility", "precision_support"]


def feasibility(config: EngineConfig, usable_cores: int) -> str | None:
    """Why ``config`` cannot run on this host with ``usable_cores``, or None if it can.

    Example:
        >>> feasibility(EngineConfig(shards=4, threads_per_shard=4), 2)[:40]
        'shards * threads_per_shard = 4 * 4 = 16 '
    """
    reason = config.check_cores(usable_cores)
    if reason:
        return reason
    if config.device.startswith("cuda") and not torch.cuda.is_available():
        return f"device {config.device!r} needs CUDA, which this host does not have"
    return precision_support(config.precision, device=config.device) or runtime_support(
        config.runtime, config.precision, config.mode, config.device
    )


def _cuda_ok(device: str) -> str | None:
    if not torch.cuda.is_available():
        return f"device '{device}' needs CUDA, and torch sees no CUDA device here"
    return None


def precision_support(precision: str, device: str = "cpu") -> str | None:
    """Return None if ``precision`` can run on ``device`` here, else the reason why not.

    Example:
        >>> precision_support("fp16", "cpu")[:20]
        'fp16 runs on CUDA on'

    Raises:
        ModelError: ``precision`` is not one of ``PRECISIONS`` or ``device`` is not cpu/cuda.
    """
    if precision not in PRECISIONS:
        raise ModelError(f"precision: unknown value '{precision}'; choose one of {', '.join(PRECISIONS)}")
    kind = device.split(":")[0]
    if kind not in ("cpu", "cuda"):
        raise ModelError(f"device: must be 'cpu' or 'cuda[:N]', got '{device}'")
    if kind == "cuda":
        if (reason := _cuda_ok(device)) is not None:
            return reason
        if precision in ("int8", "int8_dynamic"):
            return f"{precision} quantized kernels (fbgemm/x86) run on CPU only, not on '{device}'"
        if precision == "bf16" and not torch.cuda.is_bf16_supported():
            return f"bf16 is not supported by the CUDA device '{device}'"
        return None
    if precision == "fp16":
        return "fp16 runs on CUDA only: this CPU has no fast fp16 kernels (about 20x slower than fp32)"
    if precision == "bf16":
        try:
            supported = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            supported = False
        return None if supported else "bf16 needs a CPU with bf16 support (AVX512-BF16/AMX) via oneDNN; not found"
    if precision in ("int8", "int8_dynamic"):
        engines = torch.backends.quantized.supported_engines
        if "x86" not in engines and "fbgemm" not in engines:
            return f"{precision} needs the x86/fbgemm quantized engine; this torch has {engines}"
    return None
