"""int8 models that survive pickling into a fresh process (engine shards start that way).

An FX-quantized ``GraphModule`` does not unpickle in a fresh process on this torch (its
``__reduce__`` re-traces before the fused submodules exist), and quantized tensors lose their
quantizer through ``torch.multiprocessing``'s shared-memory reduction. :class:`QuantizedModule`
therefore pickles as a recipe: the fp32 architecture on the ``meta`` device (no weight memory),
the quantization kind, and the quantized state dict as ``torch.save`` bytes. Unpickling rebuilds
the graph (prepare, one pass on zeros, convert) and loads the state dict with
``weights_only=True``; outputs are bit-identical to the original.
"""

from __future__ import annotations

import contextlib
import copy
import io
import warnings
from collections.abc import Iterator

import torch
from torch import nn

__all__ = ["QuantizedModule", "quantize", "quiet"]


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch.ao's deprecation chatter (docs/architecture.md, facts: the API still works on this torch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.ao")
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.ao")
        warnings.filterwarnings(
            "ignore", message=r".*(torch\.ao\.quantization|quantize_per_|reduce_range|TypedStorage).*"
        )
        yield


def _engine() -> str:
    engine = "x86" if "x86" in torch.backends.quantized.supported_engines else "fbgemm"
    torch.backends.quantized.engine = engine
    return engine


def quantize(kind: str, fp32: nn.Module, calib: torch.Tensor) -> nn.Module:
    """Quantize a copy of ``fp32``: ``kind`` ``"static"`` (FX, calibrated on ``calib``) or ``"dynamic"``."""
    model = copy.deepcopy(fp32).eval()
    with quiet():
        if kind == "dynamic":
            from torch.ao.quantization import quantize_dynamic

            dynamic: nn.Module = quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)  # type: ignore[no-untyped-call]
            return dynamic.eval()
        from torch.ao.quantization import get_default_qconfig_mapping
        from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

        prepared = prepare_fx(model, get_default_qconfig_mapping(_engine()), example_inputs=(calib[:1],))
        with torch.inference_mode():
            for start in range(0, len(calib), 64):
                prepared(calib[start : start + 64])
        return convert_fx(prepared).eval()


class QuantizedModule(nn.Module):
    """An int8 module (``inner``) plus what rebuilds it after pickling (see the module docstring)."""

    def __init__(self, inner: nn.Module, fp32: nn.Module, kind: str, image_shape: tuple[int, ...]) -> None:
        super().__init__()
        self.inner = inner
        self.kind = kind
        self.image_shape = tuple(image_shape)
        # Not a registered submodule: kept off state_dict() and off the weights' memory.
        object.__setattr__(self, "_template", copy.deepcopy(fp32).to("meta"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out: torch.Tensor = self.inner(x)
        return out

    def __reduce__(self):  # type: ignore[no-untyped-def]
        buf = io.BytesIO()
        torch.save(self.inner.state_dict(), buf)
        return (_rebuild, (self._template, self.kind, self.image_shape, buf.getvalue(), self.training))

    @classmethod
    def rebuild(cls, template: nn.Module, kind: str, image_shape: tuple[int, ...], state: dict) -> QuantizedModule:  # type: ignore[type-arg]
        """Rebuild the int8 graph from an fp32 ``template`` (any device) and load ``state``."""
        fp32 = copy.deepcopy(template).to_empty(device="cpu")
        with torch.no_grad():
            for tensor in [*fp32.parameters(), *fp32.buffers()]:
                tensor.zero_() if tensor.is_floating_point() else None
            for mod in fp32.modules():
                if isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.running_var is not None:
                    mod.running_var.fill_(1.0)
        inner = quantize(kind, fp32, torch.zeros((2, *image_shape)))
        with quiet():
            inner.load_state_dict(state)
        return cls(inner, fp32, kind, image_shape)


def _rebuild(
    template: nn.Module, kind: str, image_shape: tuple[int, ...], blob: bytes, training: bool
) -> QuantizedModule:
    with quiet():
        state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    module = QuantizedModule.rebuild(template, kind, image_shape, state)
    return module.train(training)
