"""Runtime ``onnxruntime``: an exported ONNX graph, served by an ONNX Runtime session in each shard.

The engine receives the graph as an :class:`OnnxModule`: an ``nn.Module`` whose only buffer is the
``.onnx`` file's bytes, so it travels to shards exactly like any other model (the bytes as one
shared-memory tensor, nothing re-exported or re-read from disk in a shard). The engine never
exports: ``lepton_tune.models.export_onnx`` does that once per artifact and caches the file beside
the weights. ``onnxruntime`` is imported lazily, inside the process that creates a session.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from lepton_tune.exceptions import EngineError

__all__ = ["OnnxModule", "ort_session"]

_MISSING = "onnxruntime is not installed (pip install 'lepton-tune[onnx]')"


def ort_session(onnx: bytes, threads: int) -> Any:
    """An ONNX Runtime CPU session with ``threads`` intra-op threads and one inter-op thread.

    The calling process's CPU affinity (the shard's pinning) is inherited by ORT's worker threads.

    Raises:
        EngineError: onnxruntime is not installed.
    """
    try:
        import onnxruntime as ort
    except ImportError:
        raise EngineError(f"engine: {_MISSING}") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(onnx, sess_options=options, providers=["CPUExecutionProvider"])


class OnnxModule(nn.Module):
    """An ONNX model for ``runtime: onnxruntime``: fp32 ``[N, C, H, W]`` in, fp32 ``[N, ...]`` out.

    Args:
        onnx: the ``.onnx`` file's bytes (input batch dimension dynamic).
        output_shape: one image's output shape; None reads it from the graph (dims after the batch).
        precision: what the graph computes in (``"fp32"`` or ``"int8"``), for the record.

    Calling the module runs a session in this process (with torch's thread count); the engine
    builds its own session per shard with ``threads_per_shard`` threads.

    Example:
        >>> model = OnnxModule.from_file(path)  # doctest: +SKIP
        >>> with Engine(model, EngineConfig(runtime="onnxruntime"), input_shape=(3, 224, 224)) as eng:  # doctest: +SKIP
        ...     eng.predict(images)
    """

    onnx_bytes: torch.Tensor

    def __init__(self, onnx: bytes, *, output_shape: tuple[int, ...] | None = None, precision: str = "fp32") -> None:
        super().__init__()
        self.register_buffer("onnx_bytes", torch.from_numpy(np.frombuffer(onnx, dtype=np.uint8).copy()))
        self.precision = precision
        self._session: Any = None
        self.output_shape = tuple(output_shape) if output_shape is not None else self._graph_output_shape()

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> OnnxModule:
        """Load an ``.onnx`` file (the model cache's or a bundle's ``model.onnx``)."""
        return cls(Path(path).read_bytes(), **kwargs)

    def to_bytes(self) -> bytes:
        """The ``.onnx`` file's bytes (what :meth:`save` writes)."""
        return self.onnx_bytes.numpy().tobytes()

    def save(self, path: str | Path) -> Path:
        """Write the ``.onnx`` file to ``path``."""
        target = Path(path)
        target.write_bytes(self.to_bytes())
        return target

    def session(self, threads: int) -> Any:
        """A new ONNX Runtime session over this graph (see :func:`ort_session`)."""
        return ort_session(self.to_bytes(), threads)

    def _graph_output_shape(self) -> tuple[int, ...]:
        dims = self._own_session().get_outputs()[0].shape[1:]
        if not all(isinstance(d, int) for d in dims):
            raise EngineError(
                f"engine: the ONNX model's output shape {dims} is not static past the batch "
                "dimension; pass output_shape="
            )
        return tuple(dims)

    def _own_session(self) -> Any:
        if self._session is None:
            self._session = self.session(torch.get_num_threads())
        return self._session

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        session = self._own_session()
        array = x.detach().to(torch.float32).contiguous().numpy()
        return torch.from_numpy(session.run(None, {session.get_inputs()[0].name: array})[0])

    def __getstate__(self) -> dict[str, Any]:
        state = super().__getstate__() if hasattr(super(), "__getstate__") else self.__dict__.copy()  # type: ignore[no-untyped-call]
        state = dict(state)
        state["_session"] = None  # a session is per process
        return state


def onnx_runner(module: OnnxModule, threads: int) -> Any:
    """``run(batch) -> output`` through one session owned by the runner (the module can be dropped)."""
    session = module.session(threads)
    name = session.get_inputs()[0].name

    def run(batch: torch.Tensor) -> torch.Tensor:
        array = batch.numpy() if batch.dtype == torch.float32 else batch.to(torch.float32).numpy()
        return torch.from_numpy(session.run(None, {name: np.ascontiguousarray(array)})[0])

    run.session = session  # type: ignore[attr-defined]  # for tests and introspection
    return run
