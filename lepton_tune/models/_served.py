"""The trained-to-served step, once: a trained fp32 model -> the artifact a runtime serves.

The study (``tuning.ModelPreparer``) and the bundle (``bundle.export_bundle``) both call
:func:`served_artifact`, so what a trial measured and what a bundle ships are built by the same
code and identified by the same ``artifact_hash`` (export refuses a bundle whose hash differs).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from torch import nn

__all__ = ["ServedArtifact", "served_artifact"]


@dataclass(frozen=True)
class ServedArtifact:
    """What a runtime serves: the module, its content hash and what building it cost.

    Attributes:
        module: an ``nn.Module`` (eager/compile runtimes) or an ``OnnxModule`` (onnxruntime).
        artifact_hash: the model cache key of the artifact (precision conversion or ONNX graph).
        kind: ``"torch"`` (a converted module, saved as a state dict), ``"onnx"`` (a graph file) or
            ``"openvino"`` (an IR: model.xml + model.bin).
        val_accuracy: the converted model's validation accuracy, where the conversion checks it.
        convert_seconds / export_seconds: time spent converting / exporting in this call (0 on a hit).
        from_cache: the artifact came from the model cache.
        computed_precision: the precision the runtime really computes in (OpenVINO's hint, forced).
    """

    module: nn.Module
    artifact_hash: str
    kind: str
    val_accuracy: float | None
    convert_seconds: float = 0.0
    export_seconds: float = 0.0
    from_cache: bool = False
    computed_precision: str | None = None


def served_artifact(
    trained: Any, *, precision: str, runtime: str, device: str, dataset: Any, cache: Any
) -> ServedArtifact:
    """Convert ``trained`` (a :class:`TrainedModel`) for ``runtime`` at ``precision``, through ``cache``.

    ``onnxruntime``: the fp32 model exported once (int8: ONNX Runtime's static quantization on the
    calibration images), served by ``engine.OnnxModule``. Every other runtime serves the torch
    module ``convert_precision`` returns (bf16 cast, FX int8, dynamic int8, fp16 on CUDA).
    ``openvino``: the IR converted once from the cached ONNX export (int8: NNCF post-training
    quantization), served by ``engine.OpenVinoModule`` with its precision hint forced.
    """
    if runtime == "onnxruntime":
        from lepton_tune.engine import OnnxModule
        from lepton_tune.models._onnx import export_onnx

        art = export_onnx(
            trained,
            tuple(dataset.image_shape),
            precision=precision,
            dataset=dataset,
            cache=cache,
            key=trained.recipe_hash,
        )
        module = OnnxModule.from_file(art.path, output_shape=art.output_shape, precision=precision)
        return ServedArtifact(
            module, art.key, "onnx", None, export_seconds=art.export_seconds, from_cache=art.from_cache
        )
    if runtime == "openvino":
        from lepton_tune.engine import OpenVinoModule
        from lepton_tune.models._openvino import convert_openvino

        ir = convert_openvino(
            trained,
            tuple(dataset.image_shape),
            precision=precision,
            dataset=dataset,
            cache=cache,
            key=trained.recipe_hash,
        )
        ir_module = OpenVinoModule.from_files(ir.xml, output_shape=ir.output_shape, precision=precision)
        return ServedArtifact(
            ir_module,
            ir.key,
            "openvino",
            None,
            convert_seconds=ir.convert_seconds,
            export_seconds=ir.export_seconds,
            from_cache=ir.from_cache,
            computed_precision=OpenVinoModule.computed_precision(precision),
        )
    from lepton_tune.models._precision import convert_precision

    started = time.perf_counter()
    converted = convert_precision(trained, precision, dataset, device=device, cache=cache)
    return ServedArtifact(
        converted.module,
        getattr(converted, "artifact_hash", ""),
        "torch",
        getattr(converted, "val_accuracy", None),
        convert_seconds=time.perf_counter() - started,
        from_cache=bool(getattr(converted, "from_cache", False)),
    )
