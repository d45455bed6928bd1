"""How modules travel: tensors in one shared buffer beside the pickled bytes; quantized modules by value."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from lepton_tune.engine._parcel import unwrap, wrap
from tests.engine_tests._nets import tiny_net


def test_plain_module_sends_its_tensors_in_one_shared_buffer_beside_the_bytes():
    net = tiny_net()
    expected = [p.detach().clone() for p in net.parameters()]
    parcel = wrap(net)
    assert len(parcel.views) == len(list(net.parameters())) + len(list(net.buffers()))
    assert len(parcel.buffers) == 1 and parcel.buffers[0].is_shared()
    back = unwrap(parcel)
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(net.parameters(), back.parameters(), strict=True))
    assert all(torch.equal(a, b) for a, b in zip(expected, back.parameters(), strict=True))
    assert all(isinstance(p, nn.Parameter) for p in back.parameters())
    assert len(parcel.data) < 10_000  # weights are not in the bytes
    again = wrap(net)  # a second lane of the same module: nothing is copied again
    assert again.buffers[0].data_ptr() == parcel.buffers[0].data_ptr()


def test_tied_weights_views_and_memory_formats_survive_the_trip():
    net = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 10, bias=False), nn.Conv2d(3, 8, 3)).eval()
    net[1].weight = net[0].weight  # tied
    net[2].to(memory_format=torch.channels_last)
    net.register_buffer("rows", net[2].weight.detach()[:, 0])  # a view into another tensor's storage
    back = unwrap(wrap(net))
    assert back[1].weight is back[0].weight
    assert back[2].weight.stride() == net[2].weight.stride() and back[2].weight.is_contiguous(
        memory_format=torch.channels_last
    )
    assert back.rows.untyped_storage().data_ptr() == back[2].weight.untyped_storage().data_ptr()
    assert torch.equal(back.rows, back[2].weight[:, 0])


class ManyTensors(nn.Module):
    """300 separate layers: more tensors than one process start can pass as file descriptors."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = nn.ModuleList(nn.Linear(3 * 4 * 4, 3 * 4 * 4) for _ in range(300))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.flatten(1)
        for layer in self.layers:
            x = torch.tanh(layer(x))
        return x


def test_a_module_with_more_tensors_than_fds_per_process_start_is_served():
    net = ManyTensors().eval()
    images = np.random.default_rng(0).random((6, 3, 4, 4), dtype=np.float32)
    with torch.no_grad():
        expected = net(torch.from_numpy(images)).numpy()
    with Engine(net, EngineConfig(shards=2), input_shape=(3, 4, 4)) as engine:
        np.testing.assert_allclose(engine.predict(images), expected, atol=1e-5, rtol=0)


@pytest.mark.filterwarnings("ignore")
def test_quantized_module_round_trips_exactly():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    x = torch.rand(4, 3, 16, 16)
    q = prepare_fx(tiny_net(), get_default_qconfig_mapping("x86"), (x,))
    q(x)
    q = convert_fx(q)
    assert torch.equal(unwrap(wrap(q))(x), q(x))
