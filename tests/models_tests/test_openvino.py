"""OpenVINO conversion: fp32 agreement with torch, NNCF int8 agreement on the digits test split,
the cache (bf16 shares fp32's IR, a corrupt entry is converted again), refusals."""

from __future__ import annotations

import pytest
import torch

pytest.importorskip("openvino", reason="openvino is not installed (pip install 'lepton-tune[openvino]')")

from lepton_tune.engine import OpenVinoModule
from lepton_tune.exceptions import ModelError
from lepton_tune.models import ModelCache, convert_openvino
from lepton_tune.models._openvino import openvino_key


def _eager(trained, x: torch.Tensor) -> torch.Tensor:
    with torch.inference_mode():
        return trained.module.eval()(x)


def test_fp32_ir_agrees_with_torch_and_is_cached(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    art = convert_openvino(trained, digits16.image_shape, cache=cache)
    assert not art.from_cache and art.convert_seconds > 0 and art.output_shape == (10,)
    assert art.xml.parent == cache.path_for(art.key) and art.weights.is_file()
    x = digits16.test[0]
    got = OpenVinoModule.from_files(art.xml, output_shape=art.output_shape)(x)
    torch.testing.assert_close(got, _eager(trained, x), atol=1e-5, rtol=1e-5)
    again = convert_openvino(trained, digits16.image_shape, cache=cache)
    assert again.from_cache and again.xml == art.xml and again.convert_seconds == 0.0
    bf16 = convert_openvino(trained, digits16.image_shape, precision="bf16", cache=cache)
    assert bf16.from_cache and bf16.key == art.key  # bf16 is a compile hint over the same fp32 IR
    assert {e["key"] for e in cache.entries()} >= {art.key}  # an entry the cache can prove it wrote


def test_int8_nncf_agrees_with_fp32_on_99_percent_of_the_digits_test_split(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    fp32 = convert_openvino(trained, digits16.image_shape, cache=cache)
    int8 = convert_openvino(trained, digits16.image_shape, precision="int8", dataset=digits16, cache=cache)
    assert int8.key != fp32.key and "FakeQuantize" in int8.xml.read_text()
    x = digits16.test[0]
    want = _eager(trained, x).argmax(1)
    got = OpenVinoModule.from_files(int8.xml, output_shape=(10,), precision="int8")(x).argmax(1)
    agree = int((got == want).sum())
    assert agree >= 0.99 * len(x), f"{len(x) - agree} of {len(x)} test images disagree with fp32"


def test_a_corrupt_cached_ir_is_converted_again(trained, digits16, tmp_path):
    cache = ModelCache(tmp_path)
    art = convert_openvino(trained, digits16.image_shape, cache=cache)
    art.weights.write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="corrupt OpenVINO cache entry"):
        again = convert_openvino(trained, digits16.image_shape, cache=cache)
    assert not again.from_cache and OpenVinoModule.from_files(again.xml, output_shape=(10,))(
        digits16.test[0][:2]
    ).shape == (2, 10)


def test_keys_depend_on_ir_precision_shape_and_versions():
    versions = {"openvino": "1", "nncf": "1"}
    keys = {openvino_key("abc", p, s, versions) for p in ("fp32", "int8") for s in ((1, 16, 16), (3, 16, 16))}
    assert len(keys) == 4
    assert openvino_key("abc", "bf16", (1, 8, 8), versions) == openvino_key("abc", "fp32", (1, 8, 8), versions)
    assert openvino_key("abc", "fp32", (1, 8, 8), versions) != openvino_key(
        "abc", "fp32", (1, 8, 8), {**versions, "openvino": "2"}
    )


def test_refusals(trained, digits16):
    with pytest.raises(
        ModelError, match="precision 'fp16' on runtime openvino: not supported; choose one of fp32, bf16, int8"
    ):
        convert_openvino(trained, digits16.image_shape, precision="fp16")
    with pytest.raises(ModelError, match="precision 'int8' on runtime openvino: calibration needs dataset="):
        convert_openvino(trained, digits16.image_shape, precision="int8")


def test_a_model_without_one_tensor_output_is_refused(digits16):
    class Returns(torch.nn.Module):
        def forward(self, x):
            return {"not": "a tensor"}

    with pytest.raises(ModelError, match="runtime openvino: the model returned dict, expected one tensor"):
        convert_openvino(Returns(), digits16.image_shape)
