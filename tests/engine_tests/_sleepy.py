"""Models for the process-lifetime tests; importable by shard processes (they unpickle by reference)."""

from __future__ import annotations

import time

import torch
from torch import nn


class Sleepy(nn.Module):
    """Answers zeros (the warm-up) at once and sleeps ``seconds`` on any other batch: a busy shard."""

    def __init__(self, seconds: float = 300.0) -> None:
        super().__init__()
        self.seconds = seconds
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.abs().sum() > 0):
            time.sleep(self.seconds)
        return self.fc(x.flatten(1))


class Hog(nn.Module):
    """Reserves ``gib`` GiB (never touched) on any non-zero batch: a runaway allocation."""

    def __init__(self, gib: float = 4.0) -> None:
        super().__init__()
        self.gib = gib
        self.fc = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool(x.abs().sum() > 0):
            hog = torch.empty(int(self.gib * 2**30), dtype=torch.uint8)
            del hog
        return self.fc(x.flatten(1))


def linger(conn, armed: bool) -> None:  # type: ignore[no-untyped-def]
    """A child that says "ready" and then sleeps; ``armed`` makes it die with its parent."""
    if armed:
        from lepton_tune.engine._lifetime import die_with_parent

        die_with_parent(conn)
    conn.send("ready")
    time.sleep(300)
