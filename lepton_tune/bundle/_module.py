"""The served module as files, and back: state dicts only, loaded with ``weights_only=True``.

How the module is rebuilt depends on the precision (``model.loader`` in ``lepton.yaml``):

- ``fp32``: the architecture from the registry (or the user factory), then its state dict;
- ``cast`` (bf16/fp16): the architecture cast to the dtype in channels-last behind
  :class:`~lepton_tune.models.CastWrapper`, then its state dict;
- ``int8_static`` / ``int8_dynamic``: the fp32 architecture on the ``meta`` device is quantized
  again on zeros (the graph only) by :meth:`QuantizedModule.rebuild`, then the quantized state dict
  (weights, scales, zero points) is loaded: outputs equal the measured model's.

(``onnx``, for runtime onnxruntime, is not a state dict: see ``_runtimes.py``.)
Nothing in a bundle is unpickled beyond ``torch.load(..., weights_only=True)``.
"""

from __future__ import annotations

import copy
import io
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lepton_tune.config import ModelSpec
from lepton_tune.exceptions import BundleError, ModelError
from lepton_tune.models import CastWrapper, build_model
from lepton_tune.models._quantized import QuantizedModule, quiet

__all__ = ["WEIGHTS", "loader_of", "rebuild_module", "served_state"]

WEIGHTS = "weights.pt"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def loader_of(precision: str) -> str:
    """How a module of ``precision`` is stored and rebuilt (``model.loader`` in the manifest)."""
    return {"fp32": "fp32", "bf16": "cast", "fp16": "cast", "int8": "int8_static", "int8_dynamic": "int8_dynamic"}[precision]


def served_state(module: nn.Module) -> dict[str, Any]:
    """The state dict that :func:`rebuild_module` loads back (int8: the inner quantized graph's)."""
    inner = module.inner if isinstance(module, QuantizedModule) else module
    return inner.state_dict()


def save_weights(module: nn.Module, path: Path) -> None:
    buf = io.BytesIO()
    with quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
        torch.save(served_state(module), buf)
    path.write_bytes(buf.getvalue())


def _architecture(model: dict[str, Any]) -> nn.Module:
    shape = tuple(int(v) for v in model["image_shape"])
    if model.get("model_spec"):
        spec = ModelSpec(**{**model["model_spec"], "weights": None})  # the bundle's weights replace the user's file
        return build_model(spec, num_classes=int(model["num_classes"]), image_shape=shape)  # type: ignore[arg-type]
    return build_model(str(model["backbone"]), num_classes=int(model["num_classes"]), image_shape=shape)  # type: ignore[arg-type]


def rebuild_module(root: Path, model: dict[str, Any], weights: str = WEIGHTS) -> nn.Module:
    """Build the architecture described by ``model`` (the manifest's ``model`` section) and load its weights.

    Raises:
        BundleError: the weights are not a plain state dict, or do not fit the architecture
            (e.g. a bundle from another adaptation version of the backbone).
    """
    path = root / weights
    try:
        with quiet(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch raises, the file is not a safe state dict
        raise BundleError(f"{path}: not a state dict loadable with weights_only=True "
                          f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})") from None
    if not isinstance(state, dict):
        raise BundleError(f"{path}: must hold a state dict, got {type(state).__name__}")
    loader = model.get("loader", "fp32")
    try:
        fp32 = _architecture(model).eval()
        if loader in ("int8_static", "int8_dynamic"):
            kind = "static" if loader == "int8_static" else "dynamic"
            module: nn.Module = QuantizedModule.rebuild(fp32.to("meta"), kind, tuple(model["image_shape"]), state)
        else:
            if loader == "cast":
                dtype = _DTYPES[str(model["precision"])]
                module = CastWrapper(copy.deepcopy(fp32).to(dtype).to(memory_format=torch.channels_last), dtype)
            elif loader == "fp32":
                module = fp32
            else:
                raise BundleError(f"{root}: model.loader: unknown value {loader!r} (this build knows fp32, cast, "
                                  "int8_static, int8_dynamic). Upgrade lepton-tune")
            module.load_state_dict(state)
    except (RuntimeError, ModelError) as exc:
        raise BundleError(
            f"{path}: the weights do not fit {model.get('backbone')!r} as this lepton-tune builds it "
            f"({str(exc).splitlines()[0][:300]}). Load the bundle with the lepton-tune version that exported it "
            f"({model.get('lepton_tune', '?')})"
        ) from None
    return module.eval()
