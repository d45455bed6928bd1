"""User model factories the tests import as ``tests.models_tests.user_models:<name>``."""

from __future__ import annotations

from torch import nn


def linear(num_classes: int) -> nn.Module:
    """No BatchNorm: with a tiny learning rate its validation accuracy cannot move."""
    return nn.Sequential(nn.Flatten(), nn.Linear(16 * 16, num_classes))


def not_a_module(num_classes: int) -> object:
    return {"classes": num_classes}
