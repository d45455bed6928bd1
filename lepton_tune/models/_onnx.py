"""ONNX export for ``runtime: onnxruntime``: once per artifact, cached beside the weights.

The exporter is torch's TorchScript-based one (``dynamo=False``): on this torch it exports a
torchvision backbone in about 2 s against about 11 s for ``dynamo=True`` and both agree with torch
to 1e-6 (docs/architecture.md, facts). It is deprecated, so when it fails (or is gone) the ``dynamo=True`` exporter
(needs onnxscript) is used instead. The batch dimension is dynamic.

int8 is ONNX Runtime's own static quantization (``quantize_static``, QDQ format, per-channel int8
weights, uint8 activations, MinMax calibration) calibrated on the same seeded 256 training images
as the torch int8 path; not ``quantize_dynamic``, which turns convolutions into slow ConvInteger
ops. Cache layout: ``entries/<key>/model.onnx`` and ``meta.json`` (size and SHA-256 of the file,
written last), the key hashing the source artifact's hash, precision, image shape and versions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from lepton_tune.data import Dataset
from lepton_tune.exceptions import ModelError
from lepton_tune.models._cache import ModelCache, _atomic_write, content_key, sha256_file
from lepton_tune.models._precision import CALIBRATION_SAMPLES, _calibration

__all__ = ["ONNX_FILE", "OnnxArtifact", "export_onnx", "onnx_key"]

ONNX_FILE = "model.onnx"
ONNX_VERSION = 1
OPSET = 17
ONNX_PRECISIONS = ("fp32", "int8")


@dataclass(frozen=True)
class OnnxArtifact:
    """An exported ``.onnx`` file and what it is."""

    path: Path
    key: str
    precision: str
    output_shape: tuple[int, ...]
    export_seconds: float
    from_cache: bool


def onnx_key(source_hash: str, precision: str, image_shape: tuple[int, ...]) -> str:
    """The cache key of the ONNX export of artifact ``source_hash`` in ``precision``."""
    return content_key(
        {
            "what": "onnx",
            "source": source_hash,
            "precision": precision,
            "image_shape": list(image_shape),
            "opset": OPSET,
            "calibration": CALIBRATION_SAMPLES if precision == "int8" else 0,
            "version": ONNX_VERSION,
        }
    )


def _export_bytes(module: nn.Module, image_shape: tuple[int, ...]) -> bytes:
    example = (torch.zeros((1, *image_shape)),)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            buffer = io.BytesIO()
            torch.onnx.export(
                module,
                example,
                buffer,  # type: ignore[arg-type]
                dynamo=False,
                opset_version=OPSET,
                dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
                input_names=["input"],
                output_names=["output"],
            )
            return buffer.getvalue()
    except Exception as legacy:  # noqa: BLE001 - any failure of the deprecated exporter: try the maintained one
        try:
            with contextlib.redirect_stdout(sys.stderr):  # the dynamo exporter prints progress; stdout may hold --json
                program = torch.onnx.export(
                    module,
                    example,
                    dynamo=True,
                    opset_version=max(OPSET, 18),
                    dynamic_shapes=({0: torch.export.Dim("batch")},),
                    input_names=["input"],
                    output_names=["output"],
                )
            assert program is not None
            with tempfile.TemporaryDirectory() as tmp:
                program.save(str(Path(tmp) / ONNX_FILE))
                return (Path(tmp) / ONNX_FILE).read_bytes()
        except Exception as exc:  # noqa: BLE001 - both exporters failed: the model cannot be exported
            first = (str(exc).splitlines() or [""])[0][:200]
            raise ModelError(
                f"runtime onnxruntime: ONNX export failed ({type(legacy).__name__}; then dynamo: "
                f"{type(exc).__name__}: {first}). Use runtime eager or compile for this model"
            ) from None


class _Reader:
    """ONNX Runtime calibration reader over a tensor of images, 32 at a time."""

    def __init__(self, images: torch.Tensor, name: str) -> None:
        self.batches = iter([{name: images[i : i + 32].numpy()} for i in range(0, len(images), 32)])

    def get_next(self) -> dict[str, Any] | None:
        return next(self.batches, None)


def _quantize(fp32: bytes, calibration: torch.Tensor) -> bytes:
    try:
        from onnxruntime.quantization import (
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError:
        raise ModelError(
            "precision int8 on runtime onnxruntime: onnxruntime is not installed (pip install 'lepton-tune[onnx]')"
        ) from None
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        src.write_bytes(fp32)
        previous = logging.root.manager.disable
        logging.disable(logging.WARNING)  # ORT logs a pre-processing hint on the root logger every time
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quantize_static(
                    str(src),
                    str(dst),
                    _Reader(calibration.float(), "input"),
                    quant_format=QuantFormat.QDQ,
                    per_channel=True,
                    activation_type=QuantType.QUInt8,
                    weight_type=QuantType.QInt8,
                    calibrate_method=CalibrationMethod.MinMax,
                )
        finally:
            logging.disable(previous)
        return dst.read_bytes()


def _cached(entry: Path) -> dict[str, Any] | None:
    meta_path, path = entry / "meta.json", entry / ONNX_FILE
    if not (meta_path.is_file() and path.is_file()):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    if path.stat().st_size != meta.get("size") or sha256_file(path) != meta.get("sha256"):
        warnings.warn(f"{path}: corrupt ONNX cache entry (checksum mismatch); exporting again", stacklevel=3)
        return None
    return dict(meta)


def export_onnx(
    model: Any,
    image_shape: tuple[int, ...],
    *,
    precision: str = "fp32",
    dataset: Dataset | None = None,
    cache: ModelCache | None = None,
    key: str | None = None,
) -> OnnxArtifact:
    """Export ``model`` (fp32; a module, TrainedModel or ConvertedModel) to ONNX once, quantized for int8.

    Args:
        model: the fp32 model (``.module`` is taken from a TrainedModel/ConvertedModel).
        image_shape: one input image's shape ``(C, H, W)``.
        precision: ``"fp32"`` or ``"int8"`` (ONNX Runtime static quantization).
        dataset: calibration images for int8 (256 seeded training images).
        cache: where to keep the file (None: a temporary directory, nothing reused).
        key: the source artifact's hash (default: the model's ``recipe_hash``); with ``cache``, a
            second call with the same key, precision and shape returns the cached file.

    Raises:
        ModelError: unsupported precision, missing calibration data or onnxruntime, or export failure.

    Example:
        >>> art = export_onnx(tm, (3, 32, 32), cache=ModelCache())  # doctest: +SKIP
        >>> OnnxModule.from_file(art.path, output_shape=art.output_shape)  # doctest: +SKIP
    """
    if precision not in ONNX_PRECISIONS:
        raise ModelError(
            f"precision '{precision}' on runtime onnxruntime: not supported; choose one of "
            f"{', '.join(ONNX_PRECISIONS)} (int8 is ONNX Runtime's static quantization)"
        )
    if precision == "int8" and dataset is None:
        raise ModelError("precision 'int8' on runtime onnxruntime: calibration needs dataset= (training images)")
    module = getattr(model, "module", model)
    shape = tuple(int(d) for d in image_shape)
    key = key or getattr(model, "recipe_hash", "") or None
    if cache is None or key is None:
        cache, key = ModelCache(tempfile.mkdtemp(prefix="lepton-onnx-")), key or "uncached"
    full = onnx_key(key, precision, shape)
    entry = cache.path_for(full)
    started = time.perf_counter()
    with cache.lock(full):
        meta = _cached(entry)
        if meta is not None:
            return OnnxArtifact(entry / ONNX_FILE, full, precision, tuple(meta["output_shape"]), 0.0, True)
        module = module.eval()
        with torch.inference_mode():
            out = module(torch.zeros((2, *shape)))
        if not isinstance(out, torch.Tensor):
            raise ModelError(
                f"runtime onnxruntime: the model returned {type(out).__name__}, expected one tensor; "
                "ONNX export needs a model with one tensor output"
            )
        output_shape = tuple(out.shape[1:])
        # an ONNX file given by the user is served as it is (quantized for int8), never re-exported
        blob = module.to_bytes() if getattr(module, "form", None) == "onnx" else _export_bytes(module, shape)
        if precision == "int8":
            assert dataset is not None
            blob = _quantize(blob, _calibration(dataset))
        with contextlib.suppress(FileExistsError):
            entry.mkdir(parents=True)
        path = entry / ONNX_FILE
        _atomic_write(path, lambda fh: fh.write(blob))
        meta = {
            "kind": "onnx",
            "source": key,
            "recipe_hash": getattr(model, "recipe_hash", key),
            "backbone": getattr(model, "backbone", type(module).__name__),
            "precision": f"{precision} (onnx)",
            "image_shape": list(shape),
            "output_shape": list(output_shape),
            "opset": OPSET,
            "key": full,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "size": path.stat().st_size,
            "sha256": sha256_file(path),
        }
        _atomic_write(entry / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
    return OnnxArtifact(path, full, precision, output_shape, time.perf_counter() - started, False)
