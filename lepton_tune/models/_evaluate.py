"""Batched inference helpers: predictions and top-1 accuracy on a split."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["accuracy", "predict"]


def predict(module: nn.Module, x: torch.Tensor, *, batch_size: int = 256, device: str = "cpu") -> torch.Tensor:
    """Top-1 class of every row of ``x`` (module put in eval mode, no autograd), on the CPU."""
    module.eval()
    with torch.inference_mode():
        out = [
            module(x[start : start + batch_size].to(device)).float().argmax(dim=1).cpu()
            for start in range(0, len(x), batch_size)
        ]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.int64)


def accuracy(module: nn.Module, split: tuple[torch.Tensor, torch.Tensor], *, device: str = "cpu") -> float:
    """Top-1 accuracy of ``module`` on ``(x, y)``."""
    x, y = split
    if len(y) == 0:
        return 0.0
    return float((predict(module, x, device=device) == y).float().mean())
