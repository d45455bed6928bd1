"""OpenVINO IR for ``runtime: openvino``: converted once per artifact, cached beside the weights.

The IR is converted from the cached fp32 ONNX export (``export_onnx``, shared with runtime
onnxruntime) by ``openvino.convert_model``; only when the ONNX export fails is the torch module
converted directly. Weights stay fp32 in the files (``compress_to_fp16=False``): what a lane
computes in is its compile-time precision hint (see ``lepton_tune.engine._runtime_openvino``), so
fp32 and bf16 serve the same IR.

int8 is NNCF's post-training quantization (``nncf.quantize``, default preset, full bias
correction) calibrated on the same seeded 256 training images as the torch and ONNX Runtime int8
paths.

Cache layout: ``entries/<key>/model.xml``, ``model.bin`` and ``meta.json`` (size and SHA-256 of
both files, written last); the key hashes the source artifact's hash, the IR's precision, the
image shape and the openvino/nncf versions.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import tempfile
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from lepton_tune.data import Dataset
from lepton_tune.exceptions import ModelError
from lepton_tune.models._cache import ModelCache, _atomic_write, content_key, sha256_file
from lepton_tune.models._onnx import export_onnx
from lepton_tune.models._precision import CALIBRATION_SAMPLES, _calibration

__all__ = ["OPENVINO_FILES", "OpenVinoArtifact", "convert_openvino", "openvino_key"]

OPENVINO_FILES = ("model.xml", "model.bin")
OPENVINO_VERSION = 1
_IR_PRECISION = {"fp32": "fp32", "bf16": "fp32", "int8": "int8"}  # bf16 is a compile hint over the fp32 IR


@dataclass(frozen=True)
class OpenVinoArtifact:
    """A converted IR (``xml`` and its ``.bin``) and what it is."""

    xml: Path
    key: str
    precision: str
    output_shape: tuple[int, ...]
    export_seconds: float
    convert_seconds: float
    from_cache: bool

    @property
    def weights(self) -> Path:
        return self.xml.with_suffix(".bin")


def _versions() -> dict[str, str]:
    try:
        import openvino as ov
    except ImportError:
        raise ModelError("runtime openvino: openvino is not installed (pip install 'lepton-tune[openvino]')") from None
    try:
        import nncf

        nncf_version = str(nncf.__version__)
    except ImportError:
        nncf_version = ""
    return {"openvino": str(ov.get_version()), "nncf": nncf_version}


def openvino_key(source_hash: str, precision: str, image_shape: tuple[int, ...], versions: dict[str, str]) -> str:
    """The cache key of the IR of artifact ``source_hash`` serving ``precision`` (bf16 shares fp32's)."""
    ir = _IR_PRECISION[precision]
    return content_key(
        {
            "what": "openvino",
            "source": source_hash,
            "precision": ir,
            "image_shape": list(image_shape),
            "calibration": CALIBRATION_SAMPLES if ir == "int8" else 0,
            "version": OPENVINO_VERSION,
            "openvino": versions["openvino"],
            "nncf": versions["nncf"] if ir == "int8" else "",
        }
    )


def _quantize(model: Any, calibration: torch.Tensor) -> Any:
    try:
        import nncf
    except ImportError:
        raise ModelError(
            "precision int8 on runtime openvino: nncf is not installed (pip install 'lepton-tune[openvino]')"
        ) from None
    images = [calibration[i : i + 1].float().numpy() for i in range(len(calibration))]
    nncf.set_log_level(logging.ERROR)  # its INFO lines and progress bars would interleave with a study's output
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        # Full bias correction: on digits it kept top-1 agreement with fp32 at 99.6-100% where the fast
        # variant gave 96.7% on an undertrained small_cnn (a few more seconds, once per artifact).
        return nncf.quantize(model, nncf.Dataset(images), subset_size=len(images), fast_bias_correction=False)


def _ov_model(module: torch.nn.Module, shape: tuple[int, ...], onnx: Path | None) -> Any:
    import openvino as ov

    if onnx is not None:
        return ov.convert_model(str(onnx))
    try:
        return ov.convert_model(module, example_input=torch.zeros((1, *shape)))
    except Exception as exc:  # noqa: BLE001 - any conversion failure: the model cannot be served by openvino
        first = (str(exc).splitlines() or [""])[0][:200]
        raise ModelError(
            f"runtime openvino: conversion failed ({type(exc).__name__}: {first}). "
            "Use runtime eager or compile for this model"
        ) from None


def _cached(entry: Path) -> dict[str, Any] | None:
    meta_path = entry / "meta.json"
    if not meta_path.is_file() or not all((entry / name).is_file() for name in OPENVINO_FILES):
        return None
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError):
        return None
    for name in OPENVINO_FILES:
        path, want = entry / name, (meta.get("files") or {}).get(name, {})
        if path.stat().st_size != want.get("size") or sha256_file(path) != want.get("sha256"):
            warnings.warn(f"{path}: corrupt OpenVINO cache entry (checksum mismatch); converting again", stacklevel=3)
            return None
    return dict(meta)


def _source(model: Any, shape: tuple[int, ...], cache: ModelCache, key: str) -> tuple[Path | None, float]:
    """The cached fp32 ONNX export (None when the model cannot be exported) and the seconds it took."""
    try:
        art = export_onnx(model, shape, cache=cache, key=key)
    except ModelError:
        return None, 0.0
    return art.path, art.export_seconds


def convert_openvino(
    model: Any,
    image_shape: tuple[int, ...],
    *,
    precision: str = "fp32",
    dataset: Dataset | None = None,
    cache: ModelCache | None = None,
    key: str | None = None,
) -> OpenVinoArtifact:
    """Convert ``model`` (fp32; a module, TrainedModel or ConvertedModel) to an OpenVINO IR once.

    Args:
        model: the fp32 model (``.module`` is taken from a TrainedModel/ConvertedModel).
        image_shape: one input image's shape ``(C, H, W)``.
        precision: ``"fp32"``, ``"bf16"`` (the fp32 IR, compiled with a bf16 hint) or ``"int8"``
            (NNCF post-training quantization).
        dataset: calibration images for int8 (256 seeded training images).
        cache: where to keep the files (None: a temporary directory, nothing reused).
        key: the source artifact's hash (default: the model's ``recipe_hash``).

    Raises:
        ModelError: unsupported precision, missing calibration data, openvino or nncf, or a failed conversion.

    Example:
        >>> art = convert_openvino(tm, (3, 32, 32), cache=ModelCache())  # doctest: +SKIP
        >>> OpenVinoModule.from_files(art.xml, output_shape=art.output_shape)  # doctest: +SKIP
    """
    if precision not in _IR_PRECISION:
        raise ModelError(
            f"precision '{precision}' on runtime openvino: not supported; choose one of "
            f"{', '.join(_IR_PRECISION)} (int8 is NNCF's post-training quantization)"
        )
    if precision == "int8" and dataset is None:
        raise ModelError("precision 'int8' on runtime openvino: calibration needs dataset= (training images)")
    versions = _versions()
    module = getattr(model, "module", model)
    shape = tuple(int(d) for d in image_shape)
    key = key or getattr(model, "recipe_hash", "") or None
    if cache is None or key is None:
        cache, key = ModelCache(tempfile.mkdtemp(prefix="lepton-openvino-")), key or "uncached"
    full = openvino_key(key, precision, shape, versions)
    entry = cache.path_for(full)
    with cache.lock(full):
        meta = _cached(entry)
        if meta is not None:
            return OpenVinoArtifact(
                entry / OPENVINO_FILES[0], full, precision, tuple(meta["output_shape"]), 0.0, 0.0, True
            )
        onnx, export_seconds = _source(model, shape, cache, key)
        started = time.perf_counter()
        module = module.eval()
        with torch.inference_mode():
            out = module(torch.zeros((1, *shape)))
        if not isinstance(out, torch.Tensor):
            raise ModelError(f"runtime openvino: the model returned {type(out).__name__}, expected one tensor")
        ov_model = _ov_model(module, shape, onnx)
        if _IR_PRECISION[precision] == "int8":
            assert dataset is not None
            ov_model = _quantize(ov_model, _calibration(dataset))
        _write(
            entry,
            ov_model,
            {
                "source": key,
                "recipe_hash": getattr(model, "recipe_hash", key),
                "backbone": getattr(model, "backbone", type(module).__name__),
                "precision": f"{_IR_PRECISION[precision]} (openvino)",
                "image_shape": list(shape),
                "output_shape": list(out.shape[1:]),
                "key": full,
                **versions,
                "from_onnx": onnx is not None,
            },
        )
    return OpenVinoArtifact(
        entry / OPENVINO_FILES[0],
        full,
        precision,
        tuple(out.shape[1:]),
        export_seconds,
        time.perf_counter() - started,
        False,
    )


def _write(entry: Path, ov_model: Any, meta: dict[str, Any]) -> None:
    """Save the IR into ``entry`` (files first, then meta.json with their checksums)."""
    import openvino as ov

    with contextlib.suppress(FileExistsError):
        entry.mkdir(parents=True)
    with tempfile.TemporaryDirectory(dir=entry) as tmp:
        ov.save_model(ov_model, str(Path(tmp) / OPENVINO_FILES[0]), compress_to_fp16=False)
        for name in OPENVINO_FILES:
            blob = (Path(tmp) / name).read_bytes()
            _atomic_write(entry / name, lambda fh, blob=blob: fh.write(blob))
    files = {
        name: {"size": (entry / name).stat().st_size, "sha256": sha256_file(entry / name)} for name in OPENVINO_FILES
    }
    meta = {"kind": "openvino", **meta, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "files": files}
    _atomic_write(entry / "meta.json", lambda fh: fh.write(json.dumps(meta, indent=2).encode()))
