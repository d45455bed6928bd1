"""Stages 2-3 of a trial: the trained model from the cache, then its precision artifact.

Kept apart from the objective so that both the search and the baseline share one memo of
prepared models per process (a recipe trains once per machine thanks to the model cache; within
one process it is not even reloaded).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any

from lepton_tune.config import ModelSpec, StudySpec, TrainRecipe

__all__ = ["ModelPreparer", "PreparedModel"]


@dataclass(frozen=True)
class PreparedModel:
    module: Any
    info: dict[str, Any]
    train_seconds: float
    convert_seconds: float
    export_seconds: float = 0.0


class ModelPreparer:
    """Train (or load from cache) and convert models, memoised per process."""

    def __init__(self, spec: StudySpec, *, progress: Any = None) -> None:
        self.spec = spec
        self._progress = progress
        self._dataset: Any = None
        self._lock = threading.RLock()
        self._memo: dict[tuple[str, str, str], PreparedModel] = {}
        self._trained: dict[tuple[str, str], Any] = {}

    @property
    def dataset(self) -> Any:
        from lepton_tune.data import load_dataset

        with self._lock:
            if self._dataset is None:
                self._dataset = load_dataset(self.spec.dataset)
            return self._dataset

    def check_model(self) -> None:
        """Refuse (ConfigError) a user model whose channels, input side or classes differ from the images'.

        Raises:
            ConfigError: naming the model's value and the data's value.
        """
        from lepton_tune.models import build_model, check_model_fits, check_weights_fit

        model, data = self.spec.model, self.dataset
        assert model is not None
        where = str(self.spec.dataset.path or self.spec.dataset.kind)
        if model.weights:
            check_weights_fit(
                model.weights,
                model_label=model.label,
                data_label=where,
                num_classes=len(data.classes),
                channels=data.image_shape[0],
            )
        module = build_model(model, num_classes=len(data.classes), image_shape=data.image_shape)
        check_model_fits(
            module,
            model_label=model.label,
            data_label=where,
            num_classes=len(data.classes),
            image_shape=data.image_shape,
        )

    def eval_images(self) -> dict[str, Any]:
        """How many images calibrate and how many score accuracy (recorded on the study)."""
        data = self.dataset
        return {
            "calibration_images": len(data.train[1]),
            "accuracy_images": len(data.test[1]),
            "split_seed": self.spec.dataset.split_seed,
            "classes": list(data.classes),
        }

    def _model_ref(self, point: dict[str, Any]) -> str | ModelSpec:
        if self.spec.model is not None:
            return self.spec.model
        return str(point["backbone"])

    def prepare(self, point: dict[str, Any]) -> PreparedModel:
        from lepton_tune.models import ModelCache, served_artifact, train_model

        recipe = TrainRecipe(**{k[6:]: v for k, v in point.items() if k.startswith("train.")})
        ref = self._model_ref(point)
        ref_key = ref if isinstance(ref, str) else ref.model_dump_json()
        runtime = str(point.get("runtime", "eager"))
        suffix = {"onnxruntime": "/onnx", "openvino": "/openvino"}.get(runtime, "")
        key = (ref_key, recipe.model_dump_json(), f"{point['precision']}@{point['device']}{suffix}")
        with self._lock:
            if key in self._memo:
                hit = self._memo[key]
                return PreparedModel(hit.module, {**hit.info, "from_cache": True}, 0.0, 0.0)
            cache = ModelCache()
            started = time.perf_counter()
            trained = self._trained.get(key[:2])
            if trained is None:
                trained = train_model(ref, recipe, self.dataset, cache=cache, progress=self._progress)
                self._trained[key[:2]] = trained
            train_seconds = time.perf_counter() - started
            served = served_artifact(
                trained,
                precision=point["precision"],
                runtime=runtime,
                device=point["device"],
                dataset=self.dataset,
                cache=cache,
            )
            info = {
                "recipe_hash": trained.recipe_hash,
                "artifact_hash": served.artifact_hash,
                "params": getattr(trained, "params", None),
                "flops": getattr(trained, "flops", None),
                "from_cache": bool(trained.from_cache),
                "val_accuracy": getattr(trained, "val_accuracy", None),
                "converted_val_accuracy": served.val_accuracy,
                "trained_seconds_when_built": getattr(trained, "train_seconds", None),
                **({"onnx_from_cache": served.from_cache} if runtime == "onnxruntime" else {}),
                **(
                    {"openvino_from_cache": served.from_cache, "computed_precision": served.computed_precision}
                    if runtime == "openvino"
                    else {}
                ),
            }
            prepared = PreparedModel(served.module, info, train_seconds, served.convert_seconds, served.export_seconds)
            self._memo[key] = prepared
            return prepared
