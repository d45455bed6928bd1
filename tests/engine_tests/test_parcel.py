"""How modules travel: shared handles for plain modules, bytes for quantized ones."""

from __future__ import annotations

import pytest
import torch

from lepton_tune.engine._parcel import unwrap, wrap
from tests.engine_tests._nets import tiny_net


def test_plain_module_travels_as_shared_handles():
    net = tiny_net()
    parcel = wrap(net)
    assert parcel.shared
    assert all(p.is_shared() for p in net.parameters())


@pytest.mark.filterwarnings("ignore")
def test_quantized_module_round_trips_exactly():
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    x = torch.rand(4, 3, 16, 16)
    q = prepare_fx(tiny_net(), get_default_qconfig_mapping("x86"), (x,))
    q(x)
    q = convert_fx(q)
    parcel = wrap(q)
    assert not parcel.shared
    assert torch.equal(unwrap(parcel)(x), q(x))
