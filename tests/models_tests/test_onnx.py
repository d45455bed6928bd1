"""ONNX export: agreement with torch, the cache, ORT int8 quantization, refusals."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("onnxruntime")

from lepton_tune.engine import OnnxModule
from lepton_tune.exceptions import ModelError
from lepton_tune.models import ModelCache, export_onnx
from lepton_tune.models._onnx import onnx_key


def test_fp32_export_agrees_with_torch_and_is_cached(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    art = export_onnx(trained, digits16.image_shape, cache=cache)
    assert not art.from_cache and art.export_seconds > 0
    assert art.path.parent == cache.path_for(art.key) and art.output_shape == (10,)
    x = digits16.val[0][:16]
    with torch.inference_mode():
        want = trained.module.eval()(x)
    got = OnnxModule.from_file(art.path)(x)  # output shape read from the graph
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    again = export_onnx(trained, digits16.image_shape, cache=cache)
    assert again.from_cache and again.path == art.path and again.export_seconds == 0.0


def test_a_corrupt_cached_file_is_exported_again(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    art = export_onnx(trained, digits16.image_shape, cache=cache)
    art.path.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt ONNX cache entry"):
        again = export_onnx(trained, digits16.image_shape, cache=cache)
    assert not again.from_cache and OnnxModule.from_file(again.path).output_shape == (10,)


def test_int8_is_ort_static_quantization_close_to_fp32(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    fp32 = export_onnx(trained, digits16.image_shape, cache=cache)
    int8 = export_onnx(trained, digits16.image_shape, precision="int8", dataset=digits16, cache=cache)
    assert int8.key != fp32.key and int8.path.stat().st_size < fp32.path.stat().st_size
    import onnx

    ops = {node.op_type for node in onnx.load(str(int8.path)).graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    x = digits16.val[0]
    a = OnnxModule.from_file(fp32.path)(x).argmax(1)
    b = OnnxModule.from_file(int8.path, precision="int8")(x).argmax(1)
    assert float((a == b).float().mean()) >= 0.9


def test_keys_depend_on_precision_and_shape():
    keys = {onnx_key("abc", p, s) for p in ("fp32", "int8") for s in ((1, 16, 16), (3, 16, 16))}
    assert len(keys) == 4


def test_refusals(trained, digits16):
    with pytest.raises(
        ModelError, match="precision 'bf16' on runtime onnxruntime: not supported; choose one of fp32, int8"
    ):
        export_onnx(trained, digits16.image_shape, precision="bf16")
    with pytest.raises(ModelError, match="precision 'int8' on runtime onnxruntime: calibration needs dataset="):
        export_onnx(trained, digits16.image_shape, precision="int8")


def test_a_model_without_one_tensor_output_is_refused(digits16):
    class Returns(torch.nn.Module):
        def forward(self, x):
            return {"not": "a tensor"}

    with pytest.raises(ModelError, match="runtime onnxruntime: the model returned dict, expected one tensor"):
        export_onnx(Returns(), digits16.image_shape)


def test_when_both_exporters_fail_the_error_says_so(digits16, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("no symbolic for this op")

    monkeypatch.setattr(torch.onnx, "export", broken)
    with pytest.raises(ModelError, match=r"ONNX export failed \(RuntimeError; then dynamo: RuntimeError: no symbolic"):
        export_onnx(torch.nn.Flatten(), digits16.image_shape)
