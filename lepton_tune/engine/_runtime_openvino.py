"""Runtime ``openvino``: an OpenVINO IR (``model.xml`` + ``model.bin``), compiled once in each lane.

The engine receives the IR as an :class:`OpenVinoModule`: an ``nn.Module`` whose buffers are the
two files' bytes, so it travels to shards like any other model (nothing re-read from disk in a
shard). ``lepton_tune.models.convert_openvino`` converts once per artifact and caches the files.

How a layout maps onto OpenVINO (each lane compiles its own model and holds one infer request):

- threads per lane = ``INFERENCE_NUM_THREADS``, one stream (``NUM_STREAMS`` 1), ``LATENCY`` hint:
  the engine, not OpenVINO's THROUGHPUT hint, decides how many lanes run side by side.
- pinning is the engine's CPU affinity (a shard process's, or a thread lane's), set before the
  lane compiles, so the threads OpenVINO creates for that model inherit it; OpenVINO's own
  ``ENABLE_CPU_PINNING`` stays off so that it never re-pins lanes onto the same cores.
- precision is forced, never OpenVINO's default: its CPU plugin infers in bf16 by default on CPUs
  with native bf16 (docs/architecture.md, facts), so fp32 and int8 (whose non-quantized ops stay in f32) set
  ``INFERENCE_PRECISION_HINT`` to f32 and bf16 sets bf16. The hint read back from the compiled
  model is kept on the runner (``run.inference_precision``) for the record.
- ``infer`` releases the GIL, so lanes may be threads of one process (``isolation: thread``).

``openvino`` is imported lazily, inside the process that compiles.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lepton_tune.exceptions import EngineError

__all__ = ["OPENVINO_PRECISIONS", "OpenVinoModule", "openvino_runner", "openvino_support"]

OPENVINO_PRECISIONS = ("fp32", "bf16", "int8")
_MISSING = "openvino is not installed (pip install 'lepton-tune[openvino]')"
_HINT = {"fp32": "f32", "int8": "f32", "bf16": "bf16"}


@functools.lru_cache(maxsize=1)
def _capabilities() -> tuple[str, ...] | None:
    """OpenVINO's CPU ``OPTIMIZATION_CAPABILITIES`` (None: openvino is not importable)."""
    try:
        import openvino as ov
    except ImportError:
        return None
    return tuple(str(c) for c in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))


def openvino_support(precision: str, capabilities: tuple[str, ...] | None = ()) -> str | None:
    """Why runtime openvino cannot serve ``precision`` on this CPU, or None if it can.

    Args:
        precision: the EngineConfig precision.
        capabilities: the CPU plugin's optimization capabilities; the default ``()`` asks OpenVINO
            (None means openvino is not installed). Tests pass their own.

    Example:
        >>> openvino_support("fp16", ("FP32",))[:38]
        "runtime 'openvino' serves fp32, bf16, "
        >>> openvino_support("bf16", ("FP32", "INT8"))[:43]
        "precision 'bf16' on runtime 'openvino' need"
    """
    if precision not in OPENVINO_PRECISIONS:
        return (
            f"runtime 'openvino' serves {', '.join(OPENVINO_PRECISIONS)}, not precision {precision!r}: int8 is "
            "NNCF's post-training quantization; fp16 has no fast kernels on this CPU; use runtime eager for it"
        )
    caps = _capabilities() if capabilities == () else capabilities
    if caps is None:
        return _MISSING
    if precision == "bf16" and "BF16" not in caps:
        return (
            "precision 'bf16' on runtime 'openvino' needs a CPU with native bf16 (AVX512-BF16/AMX); OpenVINO's "
            f"CPU plugin reports only {', '.join(caps)}. Use fp32 or int8"
        )
    return None


class OpenVinoModule(nn.Module):
    """An OpenVINO IR for ``runtime: openvino``: fp32 ``[N, C, H, W]`` in, fp32 ``[N, ...]`` out.

    Args:
        xml: the IR's ``model.xml`` bytes (input batch dimension dynamic).
        weights: the IR's ``model.bin`` bytes.
        output_shape: one image's output shape (dims after the batch).
        precision: what the IR serves (``"fp32"``, ``"bf16"`` or ``"int8"``): sets the
            inference precision hint when compiled.

    Calling the module compiles it once in this process (torch's thread count); the engine
    compiles its own per lane with ``threads_per_shard`` threads.

    Example:
        >>> model = OpenVinoModule.from_files("model.xml", output_shape=(10,))  # doctest: +SKIP
        >>> with Engine(model, EngineConfig(runtime="openvino"), input_shape=(3, 224, 224)) as eng:  # doctest: +SKIP
        ...     eng.predict(images)
    """

    xml_bytes: torch.Tensor
    bin_bytes: torch.Tensor

    def __init__(self, xml: bytes, weights: bytes, *, output_shape: tuple[int, ...], precision: str = "fp32") -> None:
        super().__init__()
        if precision not in OPENVINO_PRECISIONS:
            raise EngineError(
                f"engine: OpenVinoModule precision must be one of {', '.join(OPENVINO_PRECISIONS)}, got {precision!r}"
            )
        self.register_buffer("xml_bytes", torch.from_numpy(np.frombuffer(xml, dtype=np.uint8).copy()))
        self.register_buffer("bin_bytes", torch.from_numpy(np.frombuffer(weights, dtype=np.uint8).copy()))
        self.precision = precision
        self.output_shape = tuple(int(d) for d in output_shape)
        self._runner: Any = None

    @staticmethod
    def computed_precision(precision: str) -> str:
        """What a lane computes in for ``precision``, in words (OpenVINO's hint named, never its default).

        Example:
            >>> OpenVinoModule.computed_precision("fp32")
            'f32 (INFERENCE_PRECISION_HINT=f32)'
        """
        if precision == "int8":
            return "int8 (NNCF), other ops f32 (INFERENCE_PRECISION_HINT=f32)"
        return f"{_HINT[precision]} (INFERENCE_PRECISION_HINT={_HINT[precision]})"

    @classmethod
    def from_files(cls, xml: str | Path, weights: str | Path | None = None, **kwargs: Any) -> OpenVinoModule:
        """Load an IR (``weights`` defaults to the ``.bin`` beside the ``.xml``)."""
        xml = Path(xml)
        return cls(xml.read_bytes(), Path(weights or xml.with_suffix(".bin")).read_bytes(), **kwargs)

    def save(self, xml: str | Path) -> tuple[Path, Path]:
        """Write ``xml`` and the ``.bin`` beside it; return both paths."""
        target = Path(xml)
        weights = target.with_suffix(".bin")
        target.write_bytes(self.xml_bytes.numpy().tobytes())
        weights.write_bytes(self.bin_bytes.numpy().tobytes())
        return target, weights

    def compile(self, threads: int) -> Any:
        """A compiled model over this IR with ``threads`` inference threads and this precision's hint.

        Raises:
            EngineError: openvino is not installed or cannot compile the IR here.
        """
        try:
            import openvino as ov
        except ImportError:
            raise EngineError(f"engine: {_MISSING}") from None
        core = ov.Core()
        model = core.read_model(
            model=self.xml_bytes.numpy().tobytes(), weights=ov.Tensor(self.bin_bytes.numpy().copy())
        )
        config = {
            "INFERENCE_NUM_THREADS": int(threads),
            "NUM_STREAMS": 1,
            "PERFORMANCE_HINT": "LATENCY",
            "INFERENCE_PRECISION_HINT": _HINT[self.precision],
            "ENABLE_CPU_PINNING": False,
        }
        try:
            return core.compile_model(model, "CPU", config)
        except RuntimeError as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise EngineError(f"engine: OpenVINO could not compile the {self.precision} IR: {first}") from None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self._runner is None:
            self._runner = openvino_runner(self, torch.get_num_threads())
        out: torch.Tensor = self._runner(x)
        return out

    def __getstate__(self) -> dict[str, Any]:
        state = dict(super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__)  # type: ignore[no-untyped-call]
        state["_runner"] = None  # a compiled model is per process
        return state


def openvino_runner(module: OpenVinoModule, threads: int) -> Any:
    """``run(batch) -> output`` through one compiled model and one infer request owned by the runner."""
    compiled = module.compile(threads)
    request = compiled.create_infer_request()

    def run(batch: torch.Tensor) -> torch.Tensor:
        array = batch.numpy() if batch.dtype == torch.float32 else batch.to(torch.float32).numpy()
        request.infer({0: np.ascontiguousarray(array)}, share_inputs=True)
        return torch.from_numpy(request.get_output_tensor(0).data.copy())

    run.compiled = compiled  # type: ignore[attr-defined]  # for tests and introspection
    run.inference_precision = str(compiled.get_property("INFERENCE_PRECISION_HINT"))  # type: ignore[attr-defined]
    return run
