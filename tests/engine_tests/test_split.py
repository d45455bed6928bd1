"""Pipeline cuts: where a single tensor crosses, balanced by measured cost, exact outputs."""

from __future__ import annotations

import itertools

import pytest
import torch

from lepton_tune.engine import split_model
from lepton_tune.exceptions import EngineError
from tests.engine_tests._nets import SHAPE, Branchy, ResidualNet, TwoInputs, TwoOutputs, tiny_net


def _compose(stages, x):
    with torch.inference_mode():
        for stage in stages:
            x = stage.module(x)
    return x


@pytest.mark.parametrize("make", [tiny_net, ResidualNet])
@pytest.mark.parametrize("k", [2, 3])
def test_stages_compose_to_the_model(make, k):
    model = make().eval()
    stages = split_model(model, SHAPE, k, precision="fp32")
    x = torch.rand(4, *SHAPE)
    with torch.inference_mode():
        expected = model(x)
    assert len(stages) == k
    assert torch.equal(_compose(stages, x), expected)
    for before, after in itertools.pairwise(stages):
        assert before.out_shape == after.in_shape and before.out_dtype == after.in_dtype


def test_residual_blocks_are_never_cut_inside():
    stages = split_model(ResidualNet().eval(), SHAPE, 3, precision="fp32")
    for stage in stages:
        code = stage.module.code
        assert ("a1" in code) == ("a2" in code) and ("b1" in code) == ("b2" in code)


def test_each_stage_holds_only_its_weights():
    stages = split_model(tiny_net(), SHAPE, 2, precision="fp32")
    sizes = [sum(p.numel() for p in s.module.parameters()) for s in stages]
    assert sum(sizes) == sum(p.numel() for p in tiny_net().parameters()) and all(sizes)


def test_too_many_stages_is_refused():
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 4), torch.nn.ReLU())
    with pytest.raises(
        EngineError,
        match=r"mode 'pipeline' with shards = 4 needs 3 cut points .* has 2\. "
        r"Lower shards or use mode: replica",
    ):
        split_model(net, SHAPE, 4, precision="fp32")


def test_untraceable_model_is_refused():
    with pytest.raises(
        EngineError,
        match=r"mode 'pipeline' needs a model torch.fx can trace, and tracing "
        r"Branchy failed: .*Use mode: replica",
    ):
        split_model(Branchy(), SHAPE, 2, precision="fp32")


def test_models_with_two_inputs_or_two_outputs_are_refused():
    with pytest.raises(EngineError, match="engine: mode 'pipeline' needs a model with one input, got 2"):
        split_model(TwoInputs(), SHAPE, 2, precision="fp32")
    with pytest.raises(EngineError, match="engine: mode 'pipeline' needs a model that returns one tensor"):
        split_model(TwoOutputs(), SHAPE, 2, precision="fp32")
