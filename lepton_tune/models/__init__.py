"""Backbone registry, training loop, precision conversion and the content-addressed model cache."""

from __future__ import annotations

from lepton_tune.models._cache import ModelCache, content_key
from lepton_tune.models._evaluate import accuracy, predict
from lepton_tune.models._loaded import (
    FileModel,
    build_torchvision,
    check_model_fits,
    check_weights_fit,
    describe_model,
    describe_weights,
)
from lepton_tune.models._onnx import OnnxArtifact, export_onnx
from lepton_tune.models._precision import (
    CastWrapper,
    ConvertedModel,
    artifact_key,
    convert_precision,
    precision_support,
)
from lepton_tune.models._profile import model_profile
from lepton_tune.models._registry import (
    ADAPTATION_VERSION,
    REGISTRY,
    SMALL_INPUT,
    SmallCNN,
    build_model,
)
from lepton_tune.models._train import TrainedModel, recipe_hash, train_model

__all__ = [
    "ADAPTATION_VERSION",
    "REGISTRY",
    "SMALL_INPUT",
    "CastWrapper",
    "ConvertedModel",
    "FileModel",
    "ModelCache",
    "OnnxArtifact",
    "SmallCNN",
    "TrainedModel",
    "accuracy",
    "artifact_key",
    "build_model",
    "build_torchvision",
    "check_model_fits",
    "check_weights_fit",
    "content_key",
    "convert_precision",
    "describe_model",
    "describe_weights",
    "export_onnx",
    "model_profile",
    "precision_support",
    "predict",
    "recipe_hash",
    "train_model",
]
