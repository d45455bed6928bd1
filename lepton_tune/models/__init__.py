"""Backbone registry, training loop, precision conversion and the content-addressed model cache."""

from __future__ import annotations

from lepton_tune.engine import (
    precision_support,  # re-exported: a model's precision is served by the engine
)
from lepton_tune.models._cache import ModelCache, content_key, sha256_file
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
from lepton_tune.models._openvino import OpenVinoArtifact, convert_openvino
from lepton_tune.models._precision import (
    CastWrapper,
    ConvertedModel,
    artifact_key,
    convert_precision,
)
from lepton_tune.models._profile import model_profile
from lepton_tune.models._quantized import QuantizedModule, quiet
from lepton_tune.models._registry import (
    ADAPTATION_VERSION,
    REGISTRY,
    SMALL_INPUT,
    SmallCNN,
    build_model,
)
from lepton_tune.models._served import ServedArtifact, served_artifact
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
    "OpenVinoArtifact",
    "QuantizedModule",
    "ServedArtifact",
    "SmallCNN",
    "TrainedModel",
    "accuracy",
    "artifact_key",
    "build_model",
    "build_torchvision",
    "check_model_fits",
    "check_weights_fit",
    "content_key",
    "convert_openvino",
    "convert_precision",
    "describe_model",
    "describe_weights",
    "export_onnx",
    "model_profile",
    "precision_support",
    "predict",
    "quiet",
    "recipe_hash",
    "served_artifact",
    "sha256_file",
    "train_model",
]
