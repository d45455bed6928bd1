from __future__ import annotations

import pytest

from lepton_tune.config import PricesSpec
from lepton_tune.measure import cost_per_million, host_fingerprint, host_id


def test_cost_definition() -> None:
    prices = PricesSpec(usd_per_core_hour=0.05, usd_per_GiB_hour=0.01)
    # (2 * 0.05 + 0.5 * 0.01) $/h over 100 img/s * 3600 s/h, per million images
    assert cost_per_million(cores_used=2, memory_mb=512, throughput=100.0, prices=prices) == pytest.approx(
        (0.1 + 0.005) / 360000 * 1e6
    )
    assert cost_per_million(cores_used=1, memory_mb=1, throughput=0.0, prices=prices) == float("inf")


def test_fingerprint_is_stable_and_ignores_hostname() -> None:
    fp = host_fingerprint()
    assert fp["cores"] >= 1 and fp["torch"]
    other = {**fp, "hostname": "elsewhere"}
    assert host_id(other) == host_id(fp)
    assert host_id({**fp, "cores": fp["cores"] + 1}) != host_id(fp)
