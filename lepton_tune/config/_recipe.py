"""TrainRecipe (how a backbone is trained) and ModelSpec (which model a study serves)."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["BACKBONES", "TRAIN_FIELDS", "ModelSpec", "TrainRecipe"]

#: Backbones the models registry builds by name (a test holds the registry to this list).
BACKBONES = (
    "small_cnn",
    "resnet18",
    "resnet34",
    "resnet50",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "efficientnet_b0",
    "shufflenet_v2_x0_5",
    "shufflenet_v2_x1_0",
    "squeezenet1_1",
    "regnet_x_400mf",
    "convnext_tiny",
)


class TrainRecipe(BaseModel):
    """How a backbone is trained; part of the model cache key.

    Early stopping watches the validation split; the test split is never seen by training.

    Example:
        >>> TrainRecipe(epochs=3).optimizer
        'adam'
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    epochs: int = Field(10, ge=0, le=10_000)
    optimizer: Literal["adam", "adamw", "sgd"] = "adam"
    lr: float = Field(3e-3, gt=0.0, le=10.0)
    batch_size: int = Field(64, ge=1, le=65536)
    weight_decay: float = Field(5e-4, ge=0.0, le=1.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    scheduler: Literal["cosine", "none"] = "cosine"
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0)
    patience: int = Field(0, ge=0, description="epochs without validation gain before stopping; 0 = never")
    seed: int = 0


TRAIN_FIELDS: tuple[str, ...] = tuple(TrainRecipe.model_fields)


class ModelSpec(BaseModel):
    """A user model instead of a registry backbone: ``python: package.module:factory``.

    ``factory(num_classes=N)`` must return an ``nn.Module``; ``weights`` is an optional state dict
    loaded with ``torch.load(..., weights_only=True)``. With ``train: false`` the weights are
    served as given (no training).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    python: str | None = None
    weights: str | None = None
    train: bool = True

    @field_validator("python")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError("must look like 'package.module:factory'")
        return value
