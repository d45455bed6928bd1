"""How modules travel: tensors as shared memory beside the pickled bytes; quantized modules by value."""

from __future__ import annotations

import pytest
import torch

from lepton_tune.engine._parcel import unwrap, wrap
from tests.engine_tests._nets import tiny_net


def test_plain_module_sends_its_tensors_beside_the_bytes():
    net = tiny_net()
    parcel = wrap(net)
    assert len(parcel.tensors) == len(list(net.parameters())) + len(list(net.buffers()))
    back = unwrap(parcel)
    assert all(a.data_ptr() == b.data_ptr() for a, b in zip(net.parameters(), back.parameters(), strict=True))
    assert len(parcel.data) < 10_000  # weights are not in the bytes


@pytest.mark.filterwarnings("ignore")
def test_quantized_module_round_trips_exactly():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    x = torch.rand(4, 3, 16, 16)
    q = prepare_fx(tiny_net(), get_default_qconfig_mapping("x86"), (x,))
    q(x)
    q = convert_fx(q)
    assert torch.equal(unwrap(wrap(q))(x), q(x))
