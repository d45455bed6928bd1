"""The core plan: which CPUs each shard may run on, checked against the usable cores."""

from __future__ import annotations

from lepton_tune.config import EngineConfig
from lepton_tune.exceptions import ConfigError

__all__ = ["plan_cores"]


def plan_cores(config: EngineConfig, usable: list[int]) -> list[list[int]]:
    """Return one CPU list per shard, refusing layouts that do not fit ``usable``.

    With ``pin`` each shard gets its own disjoint ``threads_per_shard`` cores, in order; without it
    every shard may run on all usable cores (the OS schedules them).

    Args:
        config: the engine layout.
        usable: the CPU ids this process may run on (``lepton_tune.config.usable_cores()``).

    Raises:
        ConfigError: ``shards * threads_per_shard`` exceeds the usable cores without
            ``oversubscribe``, or ``pin`` asks for more distinct cores than exist.

    Example:
        >>> plan_cores(EngineConfig(shards=2, pin=True), [0, 1])
        [[0], [1]]
    """
    reason = config.check_cores(len(usable))
    if reason:
        raise ConfigError(f"engine: {reason}")
    if not config.pin:
        return [list(usable) for _ in range(config.shards)]
    step = config.threads_per_shard
    return [list(usable[i * step : (i + 1) * step]) for i in range(config.shards)]
