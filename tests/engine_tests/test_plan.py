"""The core plan: disjoint pinned cores, shared cores without pin, refusals."""

from __future__ import annotations

import pytest

from lepton_tune.config import EngineConfig
from lepton_tune.engine import plan_cores
from lepton_tune.exceptions import ConfigError


def test_pinned_shards_get_disjoint_consecutive_cores():
    plan = plan_cores(EngineConfig(shards=3, threads_per_shard=2, pin=True), [0, 1, 2, 3, 4, 5, 7])
    assert plan == [[0, 1], [2, 3], [4, 5]]


def test_unpinned_shards_may_use_every_core():
    assert plan_cores(EngineConfig(shards=2), [3, 5]) == [[3, 5], [3, 5]]


def test_too_many_cores_is_refused_with_the_fix():
    with pytest.raises(
        ConfigError,
        match=r"engine: shards \* threads_per_shard = 2 \* 2 = 4 exceeds the 2 usable "
        r"cores; lower them or set oversubscribe: true",
    ):
        plan_cores(EngineConfig(shards=2, threads_per_shard=2), [0, 1])


def test_oversubscribe_allows_more_threads_but_not_more_pinned_cores():
    assert plan_cores(EngineConfig(shards=4, oversubscribe=True), [0, 1]) == [[0, 1]] * 4
    with pytest.raises(ConfigError, match="engine: pin: true needs 4 distinct cores, only 2 are usable"):
        plan_cores(EngineConfig(shards=4, oversubscribe=True, pin=True), [0, 1])
