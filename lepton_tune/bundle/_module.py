"""The served module as files, and back: state dicts only, loaded with ``weights_only=True``.

How the module is rebuilt depends on the precision (``model.loader`` in ``lepton.yaml``):

- ``fp32``: the architecture from the registry (or the user factory), then its state dict;
- ``cast`` (bf16/fp16): the architecture cast to the dtype in channels-last behind
  :class:`~lepton_tune.models.CastWrapper`, then its state dict;
- ``int8_static`` / ``int8_dynamic``: the fp32 architecture on the ``meta`` device is quantized
  again on zeros (the graph only) by :meth:`QuantizedModule.rebuild`, then the quantized state dict
  (weights, scales, zero points) is loaded: outputs equal the measured model's.

(``onnx``, for runtime onnxruntime, is not a state dict: see ``_runtimes.py``.)
Nothing in a bundle is unpickled beyond ``torch.load(..., weights_only=True)``, and a bundle never
imports a module it names: a user-model factory (``model_spec.python: pkg.mod:factory``) is built
only when the loader is told to trust it (``trust_code=True``, ``--trust-code`` or
``LEPTON_TUNE_TRUST_CODE=1``); otherwise loading stops before any import, saying how to allow it.
"""

from __future__ import annotations

import copy
import io
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lepton_tune.config import ModelSpec
from lepton_tune.exceptions import BundleError, ModelError
from lepton_tune.models import CastWrapper, QuantizedModule, build_model, quiet

__all__ = ["TRUST_ENV", "WEIGHTS", "check_trust", "loader_of", "rebuild_module", "served_state", "trusted"]

#: Environment variable that trusts bundle-named code where no argument can be passed (``mlflow models serve``).
TRUST_ENV = "LEPTON_TUNE_TRUST_CODE"

WEIGHTS = "weights.pt"
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}


def loader_of(precision: str) -> str:
    """How a module of ``precision`` is stored and rebuilt (``model.loader`` in the manifest)."""
    return {"fp32": "fp32", "bf16": "cast", "fp16": "cast", "int8": "int8_static", "int8_dynamic": "int8_dynamic"}[
        precision
    ]


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


def trusted(trust_code: bool | None) -> bool:
    """``trust_code`` if given, else whether ``LEPTON_TUNE_TRUST_CODE=1`` is set."""
    return bool(trust_code) if trust_code is not None else os.environ.get(TRUST_ENV, "").strip() == "1"


def check_trust(factory: str | None, where: str, trust_code: bool | None) -> None:
    """Refuse to import ``factory`` (a ``pkg.mod:factory`` named by a bundle or a study database) unless trusted.

    Raises:
        BundleError: naming the factory, where it was read and the three ways to allow it.
    """
    if factory and not trusted(trust_code):
        raise BundleError(
            f"{where}: names the Python factory {factory!r}; loading it would import and run that code, and code "
            "named by a bundle or a study database is not trusted by default. If you trust its source, pass "
            f"--trust-code (or trust_code=True, or set {TRUST_ENV}=1 for mlflow models serve)"
        )


def _file_model(model: dict[str, Any], state: dict[str, Any]) -> nn.Module | None:
    """A model file served as given: its bytes are the bundle's (verified) weights; no code is imported."""
    spec = model.get("model_spec") or {}
    if not (isinstance(spec, dict) and spec.get("file")):
        return None
    from lepton_tune.config import file_form
    from lepton_tune.models import FileModel

    data = state.get("file_bytes")
    if not isinstance(data, torch.Tensor) or data.dtype != torch.uint8:
        raise BundleError(
            f"model.model_spec.file {spec['file']!r}: the weights must hold the file's bytes "
            "('file_bytes', uint8); export the bundle again"
        )
    return FileModel(data.numpy().tobytes(), file_form(str(spec["file"])), label=str(spec["file"]))


def _architecture(model: dict[str, Any]) -> nn.Module:
    shape = tuple(int(v) for v in model["image_shape"])
    if model.get("model_spec"):
        spec = ModelSpec(**{**model["model_spec"], "weights": None})  # the bundle's weights replace the user's file
        return build_model(spec, num_classes=int(model["num_classes"]), image_shape=shape)  # type: ignore[arg-type]
    return build_model(str(model["backbone"]), num_classes=int(model["num_classes"]), image_shape=shape)  # type: ignore[arg-type]


def rebuild_module(
    root: Path, model: dict[str, Any], weights: str = WEIGHTS, *, trust_code: bool | None = None
) -> nn.Module:
    """Build the architecture described by ``model`` (the manifest's ``model`` section) and load its weights.

    Raises:
        BundleError: the weights are not a plain state dict, or do not fit the architecture
            (e.g. a bundle from another adaptation version of the backbone).
    """
    spec = model.get("model_spec") or {}
    check_trust(
        spec.get("python") if isinstance(spec, dict) else None,
        f"{root / 'lepton.yaml'}: model.model_spec.python",
        trust_code,
    )
    path = root / weights
    try:
        with quiet(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - whatever torch raises, the file is not a safe state dict
        raise BundleError(
            f"{path}: not a state dict loadable with weights_only=True "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200] if str(exc) else ''})"
        ) from None
    if not isinstance(state, dict):
        raise BundleError(f"{path}: must hold a state dict, got {type(state).__name__}")
    loader = model.get("loader", "fp32")
    try:
        as_file = _file_model(model, state)
        if as_file is not None and loader == "fp32":
            return as_file.eval()
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
                raise BundleError(
                    f"{root}: model.loader: unknown value {loader!r} (this build knows fp32, cast, "
                    "int8_static, int8_dynamic). Upgrade lepton-tune"
                )
            module.load_state_dict(state)
    except (RuntimeError, ModelError) as exc:
        raise BundleError(
            f"{path}: the weights do not fit {model.get('backbone')!r} as this lepton-tune builds it "
            f"({str(exc).splitlines()[0][:300]}). Load the bundle with the lepton-tune version that exported it "
            f"({model.get('lepton_tune', '?')})"
        ) from None
    return module.eval()
