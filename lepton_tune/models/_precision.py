"""Precision conversion: fp32, bf16, fp16 (CUDA), int8 static (FX, calibrated), int8 dynamic.

int8 static uses FX graph mode post-training quantization (``prepare_fx`` / ``convert_fx`` with
the ``x86`` qconfig): on this torch it is the fast eager int8 path (docs/architecture.md, facts: resnet18 12 ms vs
56 ms fp32), while PT2E is only fast under ``torch.compile``. Calibration runs on a fixed,
seeded subset of the *training* split. Cached artifacts are state dicts only: a cache hit
rebuilds the graph (prepare on the fp32 model, one tiny calibration pass, convert) and then loads
the cached quantized state dict (weights, scales, zero points) with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import copy
import time
from dataclasses import dataclass, field

import torch
from torch import nn

from lepton_tune.data import Dataset
from lepton_tune.engine import precision_support
from lepton_tune.exceptions import ModelError
from lepton_tune.models._cache import ModelCache, content_key
from lepton_tune.models._evaluate import predict
from lepton_tune.models._quantized import QuantizedModule, quantize, quiet
from lepton_tune.models._train import TrainedModel

__all__ = ["CONVERT_VERSION", "CastWrapper", "ConvertedModel", "convert_precision"]

CONVERT_VERSION = 1
#: Training images used to calibrate int8 static quantization (a seeded subset of the train split).
CALIBRATION_SAMPLES = 256


class CastWrapper(nn.Module):
    """Run ``inner`` in ``dtype`` (channels-last) behind an fp32 interface: fp32 ``[N, C, H, W]`` in, fp32 out."""

    def __init__(self, inner: nn.Module, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # No branching on x: the engine's pipeline mode traces this forward with torch.fx.
        out: torch.Tensor = self.inner(x.to(dtype=self.dtype, memory_format=torch.channels_last))
        return out.float()


@dataclass
class ConvertedModel:
    """A model ready for the engine in one precision (inputs and outputs stay fp32 tensors).

    ``val_accuracy`` is measured on the validation split in this process;
    ``val_accuracy_change`` is that minus the fp32 model's; ``val_agreement`` is the share of
    validation images whose top-1 class equals the fp32 model's.
    """

    module: nn.Module = field(repr=False)
    precision: str
    artifact_hash: str
    convert_seconds: float
    from_cache: bool
    val_accuracy: float
    val_accuracy_change: float
    val_agreement: float
    backbone: str = ""
    recipe_hash: str = ""
    device: str = "cpu"


def _calibration(dataset: Dataset) -> torch.Tensor:
    x = dataset.train[0]
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(0))[:CALIBRATION_SAMPLES]
    return x[order.sort().values]


def _int8(kind: str, fp32: nn.Module, calib: torch.Tensor, shape: tuple[int, ...], backbone: str) -> nn.Module:
    try:
        return QuantizedModule(quantize(kind, fp32, calib), fp32, kind, shape)
    except Exception as exc:  # noqa: BLE001 - FX tracing fails in many ways; each means "not quantizable"
        first = str(exc).splitlines()[0][:200] if str(exc) else ""
        raise ModelError(
            f"precision int8{'_dynamic' if kind == 'dynamic' else ''}: quantization failed for '{backbone}' "
            f"({type(exc).__name__}: {first}). Use bf16 or fp32 for this backbone"
        ) from None


def _make(precision: str, fp32: nn.Module, dataset: Dataset, backbone: str, *, for_load: bool) -> nn.Module:
    if precision in ("bf16", "fp16"):
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        cast = copy.deepcopy(fp32).to(dtype).to(memory_format=torch.channels_last)
        return CastWrapper(cast, dtype)
    if precision in ("int8", "int8_dynamic"):
        # When loading a cached artifact, two images suffice to build the graph; the state dict
        # loaded next replaces every scale and zero point.
        calib = _calibration(dataset)
        kind = "static" if precision == "int8" else "dynamic"
        return _int8(kind, fp32, calib[:2] if for_load else calib, dataset.image_shape, backbone)
    return copy.deepcopy(fp32)


def artifact_key(tm: TrainedModel, precision: str) -> str:
    """The cache key of ``tm`` converted to ``precision``."""
    return content_key(
        {
            "what": "converted",
            "recipe_hash": tm.recipe_hash,
            "precision": precision,
            "calibration": CALIBRATION_SAMPLES,
            "version": CONVERT_VERSION,
        }
    )


def convert_precision(
    tm: TrainedModel, precision: str, dataset: Dataset, *, device: str = "cpu", cache: ModelCache | None = None
) -> ConvertedModel:
    """Convert a trained fp32 model to ``precision`` and measure it on the validation split.

    bf16/fp16 wrap the cast model in :class:`CastWrapper` (fp32 tensors in and out, channels-last
    inside); int8 is FX static quantization calibrated on 256 training images; int8_dynamic
    quantizes ``nn.Linear`` layers only (little effect on conv nets). Converted artifacts are cached
    by (recipe hash, precision) as state dicts; fp32 is never stored twice.

    Example:
        >>> cm = convert_precision(tm, "int8", ds)  # doctest: +SKIP
        >>> cm.val_accuracy_change  # doctest: +SKIP
        -0.0037

    Raises:
        ModelError: the precision is unsupported on ``device`` (the message gives the reason) or
            the model cannot be quantized.
    """
    reason = precision_support(precision, device)
    if reason is not None:
        raise ModelError(f"precision '{precision}' on {device}: not supported here: {reason}")
    fp32 = tm.module.eval()
    key = tm.recipe_hash if precision == "fp32" else artifact_key(tm, precision)
    start = time.perf_counter()
    module: nn.Module | None = None
    hit = False
    if precision == "fp32":
        module, hit = copy.deepcopy(fp32), tm.from_cache
    else:
        with cache.lock(key) if cache is not None else contextlib.nullcontext():
            found = cache.load(key) if cache is not None else None
            if found is not None:
                module = _make(precision, fp32, dataset, tm.backbone, for_load=True)
                with quiet():
                    module.load_state_dict(found[0])
                hit = True
            else:
                module = _make(precision, fp32, dataset, tm.backbone, for_load=False)
                if cache is not None:
                    cache.store(
                        key,
                        module.state_dict(),
                        {
                            "kind": "converted",
                            "backbone": tm.backbone,
                            "recipe_hash": tm.recipe_hash,
                            "precision": precision,
                        },
                    )
    seconds = 0.0 if hit else time.perf_counter() - start
    module = module.to(device).eval()
    reference = predict(fp32, dataset.val[0])
    with quiet():
        got = predict(module, dataset.val[0], device=device)
    val_acc = float((got == dataset.val[1]).float().mean()) if len(got) else 0.0
    return ConvertedModel(
        module=module,
        precision=precision,
        artifact_hash=key,
        convert_seconds=seconds,
        from_cache=hit,
        val_accuracy=val_acc,
        val_accuracy_change=val_acc - tm.val_accuracy,
        val_agreement=float((got == reference).float().mean()) if len(got) else 1.0,
        backbone=tm.backbone,
        recipe_hash=tm.recipe_hash,
        device=device,
    )
