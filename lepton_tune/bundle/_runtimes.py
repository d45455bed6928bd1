"""What a bundle serves from, per runtime: the files written at export, and the module rebuilt at load.

- ``eager`` and ``compile``: the converted module's state dict (``weights.pt``, role ``weights``);
  ``compile`` compiles those weights once per shard at start-up, so it needs no other file.
- ``onnxruntime``: the exported graph (``model.onnx``, role ``onnx``), exactly the file the trial's
  engine ran (fp32, or int8 from ONNX Runtime's own static quantization), served by
  :class:`~lepton_tune.engine.OnnxModule`.
- ``openvino``: the OpenVINO IR the trial's engine compiled (``model.xml``, role ``openvino``, and
  ``model.bin``, role ``openvino_weights``; fp32, or NNCF int8), served by
  :class:`~lepton_tune.engine.OpenVinoModule` with the manifest's precision as its hint.

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

__all__ = ["ONNX", "OPENVINO_XML", "Served", "load_served", "prepare_served", "write_served"]

ONNX = "model.onnx"
OPENVINO_XML, OPENVINO_BIN = "model.xml", "model.bin"


@dataclass(frozen=True)
class Served:
    """The module a trial's engine served, and what identifies it."""

    module: nn.Module
    artifact_hash: str
    loader: str
    val_accuracy: float | None


def prepare_served(trained: Any, config: EngineConfig, dataset: Any, cache: Any) -> Served:
    """Rebuild what the trial served from its trained model, with the study's own step (``served_artifact``)."""
    from lepton_tune.models import served_artifact

    art = served_artifact(
        trained, precision=config.precision, runtime=config.runtime, device=config.device, dataset=dataset, cache=cache
    )
    loader = art.kind if art.kind in ("onnx", "openvino") else loader_of(config.precision)
    return Served(art.module, art.artifact_hash, loader, art.val_accuracy)


def write_served(served: Served, root: Path) -> list[tuple[str, str]]:
    """Write the served files under ``root``; return ``(relative path, role)`` pairs for the manifest."""
    if served.loader == "onnx":
        served.module.save(root / ONNX)  # type: ignore[operator]
        return [(ONNX, "onnx")]
    if served.loader == "openvino":
        served.module.save(root / OPENVINO_XML)  # type: ignore[operator]
        return [(OPENVINO_XML, "openvino"), (OPENVINO_BIN, "openvino_weights")]
    save_weights(served.module, root / WEIGHTS)
    return [(WEIGHTS, "weights")]


def _no_external_data(path: Path) -> None:
    """Refuse an ONNX graph that reads tensors from other files (they are not listed, so not checked)."""
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnxruntime without onnx: ORT itself keeps external data inside the dir
        return
    try:
        graph = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # noqa: BLE001 - whatever onnx raises, the file is not a graph we serve
        raise BundleError(
            f"{path}: not a readable ONNX graph ({type(exc).__name__}). Export the bundle again"
        ) from None
    external = [t.name for t in graph.graph.initializer if t.data_location == onnx.TensorProto.EXTERNAL]
    if external:
        raise BundleError(
            f"{path}: the graph reads {len(external)} tensor(s) from external files (e.g. {external[0]!r}), "
            "which the manifest does not list or check. A bundle serves only its listed files; export it again"
        )


def load_served(root: Path, manifest: dict[str, Any], *, trust_code: bool | None = None) -> nn.Module:
    """The module the engine serves, from the bundle's (already verified) files and only those.

    Raises:
        BundleError: a runtime or loader this build does not know, unreadable files, a file the
            loader needs that the manifest does not list, or a user factory not trusted.
    """
    from lepton_tune.bundle._manifest import LOADER_ROLES

    model = manifest["model"]
    roles = {f.get("role"): f["path"] for f in manifest["files"]}
    need = LOADER_ROLES.get(str(model.get("loader", "fp32")))
    if need is None or need not in roles:
        raise BundleError(
            f"{root / 'lepton.yaml'}: model.loader {model.get('loader')!r} needs a file with role "
            f"{need!r} listed in files, and none is. The manifest is not valid; export the bundle again"
        )
    if model.get("loader") == "onnx":
        from lepton_tune.engine import OnnxModule
        from lepton_tune.exceptions import EngineError

        _no_external_data(root / roles["onnx"])
        try:
            return OnnxModule.from_file(
                root / roles["onnx"], output_shape=(int(model["num_classes"]),), precision=str(model["precision"])
            )
        except EngineError as exc:
            raise BundleError(f"{root / roles['onnx']}: cannot be served here: {exc}") from None
    if model.get("loader") == "openvino":
        return _load_openvino(root, model, roles)
    return rebuild_module(root, model, roles["weights"], trust_code=trust_code)


def _load_openvino(root: Path, model: dict[str, Any], roles: dict[Any, str]) -> nn.Module:
    """The listed IR pair (an XML that names no other file: OpenVINO reads the weights we pass it)."""
    from lepton_tune.engine import OpenVinoModule
    from lepton_tune.exceptions import EngineError

    if "openvino_weights" not in roles:
        raise BundleError(
            f"{root / 'lepton.yaml'}: model.loader 'openvino' needs a file with role 'openvino_weights' "
            "(the IR's .bin) listed in files, and none is. The manifest is not valid; export the bundle again"
        )
    try:
        return OpenVinoModule.from_files(
            root / roles["openvino"],
            root / roles["openvino_weights"],
            output_shape=(int(model["num_classes"]),),
            precision=str(model["precision"]),
        )
    except EngineError as exc:
        raise BundleError(f"{root / roles['openvino']}: cannot be served here: {exc}") from None
