"""Tiny models for engine tests; importable by shard processes (they unpickle by reference)."""

from __future__ import annotations

import os
import signal
import time

import torch
from torch import nn

SHAPE = (3, 16, 16)
OUTPUTS = 5
#: A pixel value that makes the fault nets misbehave (inputs are otherwise in [0, 1)).
POISON = 7.0


def tiny_net(seed: int = 0) -> nn.Module:
    """A small conv net on 3x16x16 images with 5 outputs."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Conv2d(3, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 8, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8, OUTPUTS),
    ).eval()


class ResidualNet(nn.Module):
    """Two residual blocks: the only legal cuts lie between blocks."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(1)
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.a1, self.a2 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.b1, self.b2 = nn.Conv2d(8, 8, 3, padding=1), nn.Conv2d(8, 8, 3, padding=1)
        self.head = nn.Linear(8, OUTPUTS)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.stem(x))
        x = torch.relu(x + self.a2(torch.relu(self.a1(x))))
        x = torch.relu(x + self.b2(torch.relu(self.b1(x))))
        return self.head(x.mean(dim=(2, 3)))


class CrashNet(nn.Module):
    """SIGKILLs its own process when an image holds POISON."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x == POISON).any()):
            os.kill(os.getpid(), signal.SIGKILL)
        return self.inner(x)


class RaiseNet(nn.Module):
    """Raises ValueError when an image holds POISON."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if bool((x == POISON).any()):
            raise ValueError("poisoned pixel")
        return self.inner(x)


class SleepNet(nn.Module):
    """Sleeps ``seconds`` per batch, then runs the tiny net (keeps requests in flight)."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.inner = tiny_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.inner(x)


class ThreadsNet(nn.Module):
    """Answers with the shard's torch thread settings: [intra-op threads, inter-op threads]."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row = torch.tensor([torch.get_num_threads(), torch.get_num_interop_threads()], dtype=torch.float32)
        return row.expand(x.shape[0], 2).clone()


class BrokenOnLoad(nn.Module):
    """Unpickles only in the process that built it: shards fail to start."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()
        self.origin = os.getpid()

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if os.getpid() != self.origin:
            raise RuntimeError("cannot load here")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x)


class Branchy(nn.Module):
    """Data-dependent control flow: torch.fx cannot trace it."""

    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.sum() > 0:
            return self.inner(x)
        return -self.inner(x)


class ImportProbe(nn.Module):
    """Answers 1.0 if module ``name`` is imported in the shard, else 0.0."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.name = name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        import sys

        return torch.full((x.shape[0], 1), float(self.name in sys.modules))


class FailOnReload(nn.Module):
    """Loads in a shard until the file ``marker`` exists; then every (re)start fails."""

    def __init__(self, marker: str, seconds: float = 0.0) -> None:
        super().__init__()
        self.marker, self.seconds = marker, seconds
        self.inner = tiny_net()

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        if os.path.exists(self.marker):
            raise RuntimeError("marker present")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        time.sleep(self.seconds)
        return self.inner(x)


class DropsRows(nn.Module):
    """Returns one row whatever the batch size (a broken model)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x[:1].flatten(1)[:, :OUTPUTS]


class TwoInputs(nn.Module):
    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return x + y


class TwoOutputs(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.inner = tiny_net()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        y = self.inner(x)
        return y, y
