"""Per-runtime files of a bundle: the hook the runtime backends (issue 10) plug into.

A runtime that needs more than the weights (ONNX Runtime: the exported ``.onnx`` graph) writes its
files here at export time and returns ``(relative path, role)`` pairs; the exporter checksums them
into ``lepton.yaml``'s ``files`` list like the weights, and :func:`runtime_model` hands them to the
engine at load time. ``eager`` needs nothing more; ``compile`` compiles the same weights once per
shard at start-up, so it needs nothing more either.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from lepton_tune.config import EngineConfig
from lepton_tune.exceptions import BundleError

__all__ = ["export_runtime_files", "runtime_model"]

#: Runtimes whose bundles hold only the weights.
WEIGHTS_ONLY = ("eager", "compile")


def export_runtime_files(module: nn.Module, config: EngineConfig, root: Path,
                         image_shape: tuple[int, ...]) -> list[tuple[str, str]]:
    """Write the files ``config.runtime`` serves from (besides the weights) under ``root``.

    Raises:
        BundleError: the runtime's export is not available in this build.
    """
    if config.runtime in WEIGHTS_ONLY:
        return []
    # Hook for runtime "onnxruntime" (issue 10): export the served module once to ``model.onnx``
    # under ``root`` with the models package's ONNX exporter and return [("model.onnx", "onnx")].
    raise BundleError(f"runtime {config.runtime!r}: this lepton-tune cannot write its files into a bundle yet "
                      f"(bundles support {', '.join(WEIGHTS_ONLY)}). Export a point with runtime eager")


def runtime_model(root: Path, manifest: dict[str, Any], module: nn.Module) -> nn.Module:
    """What the engine serves for the manifest's runtime: the rebuilt module, or the runtime's wrapper of its files.

    Raises:
        BundleError: the runtime cannot be loaded by this build.
    """
    runtime = manifest["engine"].get("runtime", "eager")
    if runtime in WEIGHTS_ONLY:
        return module
    # Hook for runtime "onnxruntime" (issue 10): build what the engine runs from
    # ``root / <file with role "onnx">`` (its checksum was verified by read_manifest).
    raise BundleError(f"{root}: runtime {runtime!r} cannot be loaded by this lepton-tune "
                      f"(it loads {', '.join(WEIGHTS_ONLY)}). Upgrade lepton-tune")
