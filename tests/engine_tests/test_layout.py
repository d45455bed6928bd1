"""Planning lanes: replica copies with their core plan, pipeline stages with their pool dtypes."""

from __future__ import annotations

import pytest
import torch

from lepton_tune.config import EngineConfig
from lepton_tune.engine._layout import build_lanes, probe_output
from lepton_tune.exceptions import EngineError
from tests.engine_tests._nets import OUTPUTS, SHAPE, ResidualNet, tiny_net


def test_replica_lanes_carry_the_core_plan_and_weight_policy():
    config = EngineConfig(shards=2, pin=True, share_weights=True, pool_slots=4, batch_size=2)
    lanes, out_shape = build_lanes(tiny_net(), config, SHAPE, [[0], [1]])
    assert out_shape == (OUTPUTS,) and len(lanes) == 2
    assert [lane.stages[0].spec.cores for lane in lanes] == [(0,), (1,)]
    assert not any(lane.stages[0].spec.private_weights for lane in lanes)
    assert lanes[0].pools[0].shape == (4, *SHAPE) and lanes[0].pools[-1].shape == (4, OUTPUTS)
    assert all(pool.is_shared() for pool in lanes[0].pools)


def test_pipeline_lane_pools_follow_the_stage_dtypes():
    model = ResidualNet().eval().to(torch.bfloat16)
    lanes, _ = build_lanes(model, EngineConfig(shards=2, mode="pipeline", precision="bf16"), SHAPE, [[0, 1]] * 2)
    (lane,) = lanes
    assert [p.dtype for p in lane.pools] == [torch.float32, torch.bfloat16, torch.float32]
    assert [s.spec.cores for s in lane.stages] == [None, None]  # not pinned
    assert all(s.spec.private_weights for s in lane.stages)


def test_a_model_without_batch_dimension_is_refused():
    class Scalar(torch.nn.Module):
        def forward(self, x):
            return x.sum()

    with pytest.raises(
        EngineError,
        match=r"engine: the model returned shape \(\) for a batch of 1; "
        r"expected \[1, num_outputs\]",
    ):
        probe_output(Scalar(), EngineConfig(), SHAPE)
