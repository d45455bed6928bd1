"""What a bundle serves from, per runtime: the files written at export, and the module rebuilt at load.

- ``eager`` and ``compile``: the converted module's state dict (``weights.pt``, role ``weights``);
  ``compile`` compiles those weights once per shard at start-up, so it needs no other file.
- ``onnxruntime``: the exported graph (``model.onnx``, role ``onnx``), exactly the file the trial's
  engine ran (fp32, or int8 from ONNX Runtime's own static quantization), served by
  :class:`~lepton_tune.engine.OnnxModule`.

Every file returned here is listed in ``lepton.yaml`` with its SHA-256 and checked before loading.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from torch import nn

from lepton_tune.bundle._module import WEIGHTS, loader_of, rebuild_module, save_weights
from lepton_tune.config import EngineConfig
from lepton_tune.exceptions import BundleError

__all__ = ["ONNX", "Served", "load_served", "prepare_served", "write_served"]

ONNX = "model.onnx"


@dataclass(frozen=True)
class Served:
    """The module a trial's engine served, and what identifies it."""

    module: nn.Module
    artifact_hash: str
    loader: str
    val_accuracy: float | None


def prepare_served(trained: Any, config: EngineConfig, dataset: Any, cache: Any) -> Served:
    """Rebuild what the trial served from its trained model, as the study's preparer did."""
    if config.runtime == "onnxruntime":
        from lepton_tune.engine import OnnxModule
        from lepton_tune.models import export_onnx

        art = export_onnx(trained, tuple(dataset.image_shape), precision=config.precision, dataset=dataset,
                          cache=cache, key=trained.recipe_hash)
        module = OnnxModule.from_file(art.path, output_shape=art.output_shape, precision=config.precision)
        return Served(module, art.key, "onnx", None)
    from lepton_tune.models import convert_precision

    converted = convert_precision(trained, config.precision, dataset, device=config.device, cache=cache)
    return Served(converted.module, converted.artifact_hash, loader_of(config.precision), converted.val_accuracy)


def write_served(served: Served, root: Path) -> list[tuple[str, str]]:
    """Write the served files under ``root``; return ``(relative path, role)`` pairs for the manifest."""
    if served.loader == "onnx":
        served.module.save(root / ONNX)  # type: ignore[operator]
        return [(ONNX, "onnx")]
    save_weights(served.module, root / WEIGHTS)
    return [(WEIGHTS, "weights")]


def load_served(root: Path, manifest: dict[str, Any]) -> nn.Module:
    """The module the engine serves, from the bundle's (already verified) files.

    Raises:
        BundleError: a runtime or loader this build does not know, or unreadable files.
    """
    model = manifest["model"]
    roles = {f.get("role"): f["path"] for f in manifest["files"]}
    if model.get("loader") == "onnx":
        from lepton_tune.engine import OnnxModule
        from lepton_tune.exceptions import EngineError

        if "onnx" not in roles:
            raise BundleError(f"{root / 'lepton.yaml'}: runtime onnxruntime needs a file with role 'onnx' in files")
        try:
            return OnnxModule.from_file(root / roles["onnx"], output_shape=(int(model["num_classes"]),),
                                        precision=str(model["precision"]))
        except EngineError as exc:
            raise BundleError(f"{root / roles['onnx']}: cannot be served here: {exc}") from None
    return rebuild_module(root, model, roles.get("weights", WEIGHTS))
