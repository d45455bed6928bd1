"""The runtime seam: turn (module, precision, runtime, device) into a callable on a batch.

Runtimes and what they serve (anything else is refused by :func:`runtime_support`, before any work):

- ``eager``: every precision, replica and pipeline mode, CPU and CUDA.
- ``compile``: torch.compile (inductor, freezing) of fp32/bf16 (and fp16 on CUDA), replica mode only;
  see ``_runtime_compile`` for how batch sizes are handled.
- ``onnxruntime``: an :class:`OnnxModule` (fp32, or int8 from ONNX Runtime's static quantization),
  replica mode only, CPU only; one session per shard, ``threads_per_shard`` intra-op threads.
- ``openvino``: an :class:`OpenVinoModule` (fp32, bf16 where the CPU has it natively, NNCF int8),
  replica mode only, CPU only; one compiled model per shard, ``threads_per_shard`` threads
  (see ``_runtime_openvino``).
"""

from __future__ import annotations

import importlib.util
import itertools
from collections.abc import Callable

import torch

from lepton_tune.config import RUNTIMES
from lepton_tune.engine._runtime_compile import compile_forward, compiler_missing
from lepton_tune.engine._runtime_onnx import OnnxModule, onnx_runner
from lepton_tune.engine._runtime_openvino import OpenVinoModule, openvino_runner, openvino_support
from lepton_tune.exceptions import EngineError

__all__ = ["Runner", "build_runner", "input_dtype", "model_runtime_error", "runtime_support"]

Runner = Callable[[torch.Tensor], torch.Tensor]

_PRECISIONS = {
    "eager": None,
    "compile": ("fp32", "bf16", "fp16"),
    "onnxruntime": ("fp32", "int8"),
    "openvino": ("fp32", "bf16", "int8"),
}
_WHY_NOT = {
    "openvino": "int8 is NNCF's post-training quantization; fp16 has no fast CPU kernels here; use runtime eager",
    "compile": "int8 here is FX-quantized, which torch.compile does not speed up; use runtime eager or onnxruntime for int8",
    "onnxruntime": "int8 is ONNX Runtime's static quantization (int8); bf16/fp16 have few ONNX Runtime CPU kernels; "
    "use runtime eager or compile for them",
}


def runtime_support(runtime: str, precision: str = "fp32", mode: str = "replica", device: str = "cpu") -> str | None:
    """Return why ``runtime`` cannot serve ``precision`` in ``mode`` on ``device`` here, or None if it can.

    Example:
        >>> runtime_support("eager") is None
        True
        >>> runtime_support("compile", "int8")[:41]
        "runtime 'compile' serves fp32, bf16, fp16"
    """
    if runtime not in RUNTIMES:
        return f"unknown runtime {runtime!r}; expected one of {', '.join(RUNTIMES)}"
    if runtime == "eager":
        return None
    allowed = _PRECISIONS[runtime]
    if allowed is not None and precision not in allowed:
        return f"runtime {runtime!r} serves {', '.join(allowed)}, not precision {precision!r}: {_WHY_NOT[runtime]}"
    if mode != "replica":
        return (
            f"runtime {runtime!r} serves mode 'replica' only (pipeline stages are torch.fx cuts served eagerly); "
            "use mode: replica or runtime: eager"
        )
    if runtime == "onnxruntime":
        if device != "cpu":
            return (
                f"runtime 'onnxruntime' runs on CPU here (CPUExecutionProvider), not device {device!r}; use device: cpu"
            )
        if importlib.util.find_spec("onnxruntime") is None:
            return "onnxruntime is not installed (pip install 'lepton-tune[onnx]')"
    if runtime == "openvino":
        if device != "cpu":
            return f"runtime 'openvino' runs on CPU here (its CPU plugin), not device {device!r}; use device: cpu"
        return openvino_support(precision)
    if runtime == "compile" and device == "cpu":
        return compiler_missing()
    return None


def model_runtime_error(module: torch.nn.Module, runtime: str) -> str | None:
    """Why ``module`` cannot be served by ``runtime`` (an ONNX model needs onnxruntime and vice versa)."""
    onnx = isinstance(module, OnnxModule)
    if runtime == "onnxruntime" and not onnx:
        return (
            f"runtime 'onnxruntime' serves an OnnxModule (an exported ONNX graph), got {type(module).__name__}. "
            "Export it first (lepton_tune.models.export_onnx) and pass OnnxModule.from_file(path)"
        )
    if onnx and runtime != "onnxruntime":
        return f"an OnnxModule is served by runtime 'onnxruntime', not {runtime!r}. Set runtime: onnxruntime"
    ir = isinstance(module, OpenVinoModule)
    if runtime == "openvino" and not ir:
        return (
            f"runtime 'openvino' serves an OpenVinoModule (an OpenVINO IR), got {type(module).__name__}. "
            "Convert it first (lepton_tune.models.convert_openvino) and pass OpenVinoModule.from_files(xml)"
        )
    if ir and runtime != "openvino":
        return f"an OpenVinoModule is served by runtime 'openvino', not {runtime!r}. Set runtime: openvino"
    return None


def input_dtype(precision: str) -> torch.dtype | None:
    """The dtype fp32 inputs are cast to before the model sees them (None: leave as fp32)."""
    return {"bf16": torch.bfloat16, "fp16": torch.float16}.get(precision)


def _own_weights(module: torch.nn.Module) -> None:
    """Copy every parameter and buffer into this process's private memory."""
    with torch.no_grad():
        for tensor in itertools.chain(module.parameters(), module.buffers()):
            tensor.data = tensor.data.clone()


def build_runner(
    module: torch.nn.Module,
    *,
    precision: str,
    runtime: str = "eager",
    device: str = "cpu",
    cast_input: bool = True,
    private_weights: bool = False,
    threads: int | None = None,
    batch_size: int | None = None,
) -> Runner:
    """Prepare ``module`` to serve and return ``run(batch) -> output tensor``.

    Args:
        module: the converted model (or one pipeline stage of it); an :class:`OnnxModule` for onnxruntime,
            an :class:`OpenVinoModule` for openvino.
        precision: the EngineConfig precision; bf16/fp16 cast the (fp32) input first.
        runtime: ``"eager"``, ``"compile"``, ``"onnxruntime"`` or ``"openvino"``.
        device: ``"cpu"``, ``"cuda"`` or ``"cuda:N"``; inputs move there and outputs come back.
        cast_input: cast the input to the precision's dtype (False for later pipeline stages).
        private_weights: clone parameters and buffers (no sharing with other processes).
        threads: ONNX Runtime intra-op / OpenVINO inference threads (None: torch's current thread count).
        batch_size: compile: the one batch shape compiled (smaller batches are padded); None compiles
            each shape seen.

    Raises:
        EngineError: the runtime cannot serve this precision/device or this kind of module.

    Example:
        >>> run = build_runner(torch.nn.Linear(3, 2), precision="fp32")
        >>> run(torch.zeros(4, 3)).shape
        torch.Size([4, 2])
    """
    reason = runtime_support(runtime, precision, device=device) or model_runtime_error(module, runtime)
    if reason:
        raise EngineError(f"engine: {reason}")
    if runtime == "onnxruntime":
        assert isinstance(module, OnnxModule)
        runner: Runner = onnx_runner(module, threads if threads is not None else torch.get_num_threads())
        return runner
    if runtime == "openvino":
        assert isinstance(module, OpenVinoModule)
        ov_runner: Runner = openvino_runner(module, threads if threads is not None else torch.get_num_threads())
        return ov_runner
    if private_weights:
        _own_weights(module)
    module.eval()
    on_cpu = device == "cpu"
    if not on_cpu:
        module.to(device)
    cast = input_dtype(precision) if cast_input else None
    forward = compile_forward(module, batch_size) if runtime == "compile" else module

    def run(batch: torch.Tensor) -> torch.Tensor:
        with torch.inference_mode():
            if not on_cpu:
                batch = batch.to(device, non_blocking=True)
            if cast is not None and batch.dtype == torch.float32:
                batch = batch.to(cast)
            out = forward(batch)
            if not isinstance(out, torch.Tensor):
                raise EngineError(f"engine: the model returned {type(out).__name__}, expected a tensor")
            return out if on_cpu else out.cpu()

    return run
