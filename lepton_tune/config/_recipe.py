"""TrainRecipe (how a backbone is trained) and ModelSpec (which model a study serves)."""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["BACKBONES", "MODEL_FORMS", "TRAIN_FIELDS", "ModelSpec", "TrainRecipe", "file_form"]

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


#: The forms of a user model: a factory, a torchvision architecture (+ state dict), or a file.
MODEL_FORMS = ("factory", "torchvision", "export", "torchscript", "onnx")


def file_form(path: str) -> str:
    """The form of a model file by its name: ``.pt2`` export program, ``.onnx``, else TorchScript.

    Example:
        >>> file_form("net.pt2"), file_form("net.onnx"), file_form("net.ts")
        ('export', 'onnx', 'torchscript')
    """
    lower = path.lower()
    return "export" if lower.endswith(".pt2") else "onnx" if lower.endswith(".onnx") else "torchscript"


class ModelSpec(BaseModel):
    """The user's own model instead of a registry backbone; exactly one of three keys names it.

    - ``python: package.module:factory``: ``factory(num_classes=N)`` returns an ``nn.Module``;
      ``weights`` is an optional state dict (``torch.load(..., weights_only=True)``); trained
      unless ``train: false``.
    - ``torchvision: resnet18``: that torchvision architecture (``weights=None``, ``num_classes``
      from the data, no input adaptation) with the state dict ``weights``; never trained.
    - ``file: model.pt2 | model.onnx | model.ts``: a ``torch.export`` program, an ONNX graph (served
      by ONNX Runtime only) or a TorchScript file, served as given; never trained.

    Example:
        >>> ModelSpec(torchvision="resnet18", weights="w.pt").form
        'torchvision'
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    python: str | None = None
    torchvision: str | None = None
    file: str | None = None
    weights: str | None = None
    train: bool = True

    @model_validator(mode="before")
    @classmethod
    def _as_given_is_not_trained(cls, data: Any) -> Any:
        # A model loaded as given (an architecture name + weights, or a file) is served, never trained.
        if isinstance(data, dict) and (data.get("torchvision") or data.get("file")):
            if data.get("train") is True:
                raise ValueError(
                    "model.train: a torchvision or file model is served as given and never trained; "
                    "remove 'train: true' (use 'python: pkg.mod:factory' to train your own architecture)"
                )
            data = {**data, "train": False}
        return data

    @field_validator("python")
    @classmethod
    def _factory_form(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", value):
            raise ValueError("must look like 'package.module:factory'")
        return value

    @field_validator("torchvision")
    @classmethod
    def _torchvision_name(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"[a-z][a-z0-9_]*", value):
            raise ValueError(f"must be a torchvision model name such as 'resnet18', got {value!r}")
        return value

    @model_validator(mode="after")
    def _one_form(self) -> ModelSpec:
        given = [k for k in ("python", "torchvision", "file") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"model: give exactly one of python, torchvision, file; got {given or 'none'}")
        if self.file and self.weights:
            raise ValueError(
                "model.weights: a model file carries its own weights; remove 'weights' (got "
                f"{self.weights!r} with file {self.file!r})"
            )
        if self.torchvision and not self.weights:
            raise ValueError(
                f"model.weights: torchvision '{self.torchvision}' needs your state dict (weights: w.pt), "
                "got None; serving random weights is never what you want"
            )
        return self

    @property
    def form(self) -> str:
        """One of :data:`MODEL_FORMS`."""
        if self.python:
            return "factory"
        if self.torchvision:
            return "torchvision"
        return file_form(str(self.file))

    @property
    def label(self) -> str:
        """A short display name: the factory path, the torchvision name, or the file's name."""
        if self.file:
            return re.split(r"[\\/]", str(self.file))[-1]
        return str(self.python or self.torchvision)
