from __future__ import annotations

import pytest
from pydantic import ValidationError

from lepton_tune.config import EngineConfig


def test_defaults_and_cores() -> None:
    cfg = EngineConfig(shards=2, threads_per_shard=2)
    assert cfg.cores_used == 4
    assert "exceeds the 2 usable cores" in (cfg.check_cores(2) or "")
    assert EngineConfig(shards=2, threads_per_shard=2, oversubscribe=True).check_cores(2) is None


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"pool_slots": 2, "batch_size": 8}, r"pool_slots \(2\) must be >= batch_size \(8\)"),
        ({"mode": "pipeline", "share_weights": True}, r"share_weights only applies to mode 'replica'"),
        ({"precision": "fp16"}, r"precision 'fp16' needs device 'cuda'"),
        ({"device": "gpu"}, r"must be 'cpu', 'cuda' or 'cuda:N'"),
        ({"shardz": 1}, r"Extra inputs are not permitted"),
    ],
)
def test_rules(kwargs: dict, pattern: str) -> None:
    with pytest.raises(ValidationError, match=pattern):
        EngineConfig(**kwargs)
