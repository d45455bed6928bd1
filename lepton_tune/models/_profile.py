"""Parameter and FLOP counts of a model at a given input size."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["model_profile"]


def model_profile(module: nn.Module, image_shape: tuple[int, int, int]) -> dict[str, int]:
    """Count parameters and FLOPs of one forward pass on a ``1 x C x H x W`` input.

    FLOPs are those ``torch.utils.flop_counter.FlopCounterMode`` counts (2 per multiply-add, for
    convolutions and matrix products; element-wise ops are not counted). Run on an fp32 module.

    Example:
        >>> model_profile(nn.Sequential(nn.Flatten(), nn.Linear(4, 2)), (1, 2, 2))
        {'params': 10, 'flops': 16}
    """
    from torch.utils.flop_counter import FlopCounterMode

    params = sum(p.numel() for p in module.parameters())
    was_training = module.training
    module.eval()
    try:
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            module(torch.zeros((1, *image_shape), dtype=torch.float32))
    finally:
        module.train(was_training)
    return {"params": int(params), "flops": int(counter.get_total_flops())}
