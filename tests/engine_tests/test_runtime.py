"""The runtime seam: support answers, input casts, private weights."""

from __future__ import annotations

import pytest
import torch

from lepton_tune.engine import build_runner, runtime_support
from lepton_tune.exceptions import EngineError


def test_eager_serves_everything_and_unknown_runtimes_are_refused():
    assert runtime_support("eager", "int8", "pipeline") is None
    assert "unknown runtime 'tvm'" in runtime_support("tvm")


def test_build_runner_refuses_a_plain_module_for_onnxruntime():
    with pytest.raises(EngineError, match="engine: runtime 'onnxruntime' serves an OnnxModule"):
        build_runner(torch.nn.Linear(2, 2), precision="fp32", runtime="onnxruntime")


def test_bf16_casts_the_input_and_fp32_does_not():
    seen = []

    class Probe(torch.nn.Module):
        def forward(self, x):
            seen.append(x.dtype)
            return x.float()

    build_runner(Probe(), precision="bf16")(torch.zeros(1, 2))
    build_runner(Probe(), precision="bf16", cast_input=False)(torch.zeros(1, 2))
    build_runner(Probe(), precision="fp32")(torch.zeros(1, 2))
    assert seen == [torch.bfloat16, torch.float32, torch.float32]


def test_private_weights_are_copies():
    layer = torch.nn.Linear(2, 2)
    before = layer.weight.data_ptr()
    build_runner(layer, precision="fp32", private_weights=True)
    assert layer.weight.data_ptr() != before


def test_a_model_returning_a_tuple_is_refused():
    class Pair(torch.nn.Module):
        def forward(self, x):
            return x, x

    with pytest.raises(EngineError, match="engine: the model returned tuple, expected a tensor"):
        build_runner(Pair(), precision="fp32")(torch.zeros(1, 2))
