"""Validated, frozen configuration: studies, search spaces, engine layouts, recipes."""

from __future__ import annotations

from lepton_tune.config._engine import ENGINE_FIELDS, MODES, PRECISIONS, RUNTIMES, EngineConfig
from lepton_tune.config._errors import load_yaml
from lepton_tune.config._expr import Expression, ExpressionError
from lepton_tune.config._host import HostFacts, host_facts, usable_cores
from lepton_tune.config._metrics import METRICS, OBJECTIVES, direction_of
from lepton_tune.config._recipe import (
    BACKBONES,
    MODEL_FORMS,
    TRAIN_FIELDS,
    ModelSpec,
    TrainRecipe,
    file_form,
)
from lepton_tune.config._space import (
    SEARCHABLE,
    ParamSpec,
    SearchSpaceSpec,
    default_of,
    load_search_space,
)
from lepton_tune.config._study import (
    DEFAULT_RUN_DIR,
    DEFAULT_STUDY,
    SAMPLERS,
    DatasetSpec,
    LimitsSpec,
    PricesSpec,
    ProtocolSpec,
    SamplerSpec,
    StorageSpec,
    StudySpec,
    TrackingSpec,
    load_study,
)
from lepton_tune.config._template import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    model_space,
    model_study_yaml,
    study_name_for,
)
from lepton_tune.config._yaml import MAX_YAML_BYTES, MAX_YAML_DEPTH, MAX_YAML_NODES, safe_load_yaml

__all__ = [
    "BACKBONES",
    "DEFAULT_RUN_DIR",
    "DEFAULT_STUDY",
    "ENGINE_FIELDS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MAX_YAML_BYTES",
    "MAX_YAML_DEPTH",
    "MAX_YAML_NODES",
    "METRICS",
    "MODEL_FORMS",
    "MODES",
    "OBJECTIVES",
    "PRECISIONS",
    "RUNTIMES",
    "SAMPLERS",
    "SEARCHABLE",
    "TRAIN_FIELDS",
    "DatasetSpec",
    "EngineConfig",
    "Expression",
    "ExpressionError",
    "HostFacts",
    "LimitsSpec",
    "ModelSpec",
    "ParamSpec",
    "PricesSpec",
    "ProtocolSpec",
    "SamplerSpec",
    "SearchSpaceSpec",
    "StorageSpec",
    "StudySpec",
    "TrackingSpec",
    "TrainRecipe",
    "default_of",
    "direction_of",
    "file_form",
    "host_facts",
    "load_search_space",
    "load_study",
    "load_yaml",
    "model_space",
    "model_study_yaml",
    "safe_load_yaml",
    "study_name_for",
    "usable_cores",
]
