"""``LeptonModel``: a model's life cycle (build, train, test, tune how it is served, save, load, predict)
over the same parts the study uses.

Thin on purpose: training is ``models.train_model`` with the model cache a study uses (so ``tune``
reuses the weights ``train`` made instead of training again), accuracy is ``models.accuracy``,
``tune`` is :func:`lepton_tune.search` on a study whose only model is this one, ``save`` is an
export of the chosen point, and a loaded model predicts through the bundle's engine.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from lepton_tune._api._export import ExportResult
from lepton_tune._api._result import SearchResult
from lepton_tune._api._search import search
from lepton_tune.config import DatasetSpec, ModelSpec, StudySpec, TrainRecipe, load_study
from lepton_tune.exceptions import LeptonTuneError

__all__ = ["SERVING_SPACE", "LeptonModel"]

#: How a model may be served on a CPU (``search_spaces/cpu.yaml`` without the backbone): what
#: ``tune`` searches when no space is given.
SERVING_SPACE: dict[str, Any] = {
    "params": {
        "precision": {"choices": ["fp32", "bf16", "int8"]},
        "shards": {"low": 1, "high": "auto"},
        "mode": "replica",
        "threads_per_shard": {"low": 1, "high": "auto"},
        "pin": {"choices": [False, True]},
        "batch_size": {"choices": [1, 4, 16]},
        "max_wait_ms": {"choices": [0.0, 2.0]},
        "pool_slots": 32,
        "cache_entries": 0,
        "share_weights": False,
        "device": "cpu",
    },
    "constraints": ["shards * threads_per_shard <= cores"],
}


class LeptonModel:
    """One image classifier from training to serving.

    ``model`` is a backbone name from the registry (``small_cnn``, ``resnet18``, ...) or a user
    factory ``package.module:factory`` (``factory(num_classes=N)`` returns an ``nn.Module``).
    ``data`` is a ``DatasetSpec`` (or its dict): the embedded digits by default.

    Example (the README runs this in CI):
        >>> import lepton_tune as lt
        >>> model = lt.LeptonModel("small_cnn", data={"kind": "digits", "image_size": 32})  # doctest: +SKIP
        >>> model.train(recipe={"epochs": 3}).test() > 0.9  # doctest: +SKIP
        True
    """

    def __init__(
        self,
        model: str = "small_cnn",
        *,
        data: DatasetSpec | dict[str, Any] | None = None,
        weights: str | os.PathLike[str] | None = None,
    ) -> None:
        self.source: str | ModelSpec = (
            ModelSpec(python=model, weights=None if weights is None else str(weights)) if ":" in model else model
        )
        self.data = data if isinstance(data, DatasetSpec) else DatasetSpec(**(data or {}))
        self.recipe = TrainRecipe()
        self.trained: Any = None  # models.TrainedModel
        self.result: SearchResult | None = None
        self.bundle: Any = None  # bundle.Bundle, for a loaded model
        self._dataset: Any = None

    @property
    def dataset(self) -> Any:
        from lepton_tune.data import load_dataset

        if self._dataset is None:
            self._dataset = load_dataset(self.data)
        return self._dataset

    def train(
        self, data: DatasetSpec | dict[str, Any] | None = None, recipe: TrainRecipe | dict[str, Any] | None = None
    ) -> LeptonModel:
        """Train on the train split (early stopping on validation), or reuse the cached weights."""
        from lepton_tune.models import ModelCache, train_model

        if data is not None:
            self.data, self._dataset = (data if isinstance(data, DatasetSpec) else DatasetSpec(**data)), None
        if recipe is not None:
            self.recipe = recipe if isinstance(recipe, TrainRecipe) else TrainRecipe(**recipe)
        self.trained = train_model(self.source, self.recipe, self.dataset, cache=ModelCache())
        return self

    def test(self, data: DatasetSpec | dict[str, Any] | None = None) -> float:
        """Top-1 accuracy (0-1) of the fp32 model on the test split (never used for training)."""
        from lepton_tune.data import load_dataset
        from lepton_tune.models import accuracy

        module = self._module()
        dataset = (
            self.dataset
            if data is None
            else load_dataset(data if isinstance(data, DatasetSpec) else DatasetSpec(**data))
        )
        return float(accuracy(module, dataset.test))

    def tune(
        self,
        study: str | os.PathLike[str] | dict[str, Any] | StudySpec | None = None,
        *,
        space: dict[str, Any] | None = None,
        n_trials: int | None = None,
        **options: Any,
    ) -> SearchResult:
        """Search how this model is served (precision, shards, threads, batching) on this host.

        ``study`` (a file, dict or StudySpec) gives objectives, budgets and protocol; its dataset,
        recipe and model are replaced by this model's. ``space`` replaces the search space (default
        :data:`SERVING_SPACE`). ``options`` go to :func:`lepton_tune.search` (``run_dir``,
        ``progress``, ``tracking``, ...). The result is kept for :meth:`save`.
        """
        spec = self.study_spec(study, space=space, n_trials=n_trials)
        self.result = search(spec, n_trials=n_trials, **options)
        return self.result

    def study_spec(
        self,
        study: str | os.PathLike[str] | dict[str, Any] | StudySpec | None = None,
        *,
        space: dict[str, Any] | None = None,
        n_trials: int | None = None,
    ) -> StudySpec:
        """The study :meth:`tune` runs: ``study``'s settings, with this model, its data and recipe."""
        name = re.sub(r"[^A-Za-z0-9_.-]", "-", f"tune-{self.name}")[:128]
        base: dict[str, Any] = {"name": name, "objectives": ["accuracy", "latency_p95_ms", "memory_mb"]}
        if isinstance(study, dict):
            base = {**base, **study}
        elif study is not None:
            loaded = study if isinstance(study, StudySpec) else load_study(Path(study))
            base = loaded.model_dump(mode="json", exclude={"search_space"})
        params = dict((space or SERVING_SPACE)["params"])
        if isinstance(self.source, ModelSpec):
            params.pop("backbone", None)
            base["model"] = self.source.model_dump()
        else:
            params["backbone"] = self.source
            base.pop("model", None)
        base.update(
            dataset=self.data.model_dump(mode="json"),
            train=self.recipe.model_dump(mode="json"),
            search_space={**(space or SERVING_SPACE), "params": params},
        )
        if n_trials is not None:
            base["n_trials"] = n_trials
        return load_study(base)

    def save(self, path: str | os.PathLike[str], **choose: Any) -> ExportResult:
        """Write the tuned point as a production bundle (``choose``: ``require``, ``prefer``, ``trial``,
        ``confirm``, ``force``; see :meth:`SearchResult.export`). Needs :meth:`tune` first."""
        if self.result is None:
            raise LeptonTuneError(
                "save(): nothing tuned yet; call tune() first (a bundle is a measured serving point, not only weights)"
            )
        return self.result.export(path, **choose)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], *, trust_code: bool | None = None, digest: str | None = None
    ) -> LeptonModel:
        """A model from a bundle (files checked against their checksums first); ``predict`` serves it
        through the bundle's engine, with the layout it was measured with."""
        from lepton_tune.bundle import open_bundle

        bundle = open_bundle(Path(path), trust_code=trust_code, digest=digest)
        model = cls(str(bundle.manifest.get("model", {}).get("backbone") or "small_cnn"))
        model.bundle = bundle
        return model

    @property
    def name(self) -> str:
        return self.source.python or "model" if isinstance(self.source, ModelSpec) else self.source

    @property
    def classes(self) -> list[str]:
        return self.bundle.classes if self.bundle is not None else [str(i) for i in range(self.data.num_classes)]

    def predict(self, images: np.ndarray | Sequence[str | os.PathLike[str]]) -> list[str]:
        """Class labels for ``images``: preprocessed float arrays ``[N, C, H, W]`` or image file paths
        (decoded and preprocessed the way the bundle records; the same path as ``lepton-tune predict``)."""
        batch = self._as_batch(images)
        if self.bundle is not None:
            with self.bundle.engine() as engine:
                logits = engine.predict(batch)
        else:
            import torch

            from lepton_tune.models import predict

            top = predict(self._module(), torch.from_numpy(batch)).numpy()
            return [self.classes[i] if i < len(self.classes) else str(i) for i in top]
        return [self.classes[i] if i < len(self.classes) else str(i) for i in np.asarray(logits).argmax(axis=1)]

    def _as_batch(self, images: np.ndarray | Sequence[str | os.PathLike[str]]) -> np.ndarray:
        if isinstance(images, np.ndarray) or hasattr(images, "numpy"):
            array = images.numpy() if hasattr(images, "numpy") else images
            return np.ascontiguousarray(array, dtype=np.float32)
        from lepton_tune.data import preprocess_files

        if self.bundle is None:
            raise LeptonTuneError(
                "predict(paths): image files are decoded with a bundle's recorded preprocessing; "
                "pass preprocessed arrays, or save() and load() the model first"
            )
        return np.ascontiguousarray(
            preprocess_files([Path(p) for p in images], self.bundle.preprocessing).numpy(), dtype=np.float32
        )

    def _module(self) -> Any:
        if self.trained is None:
            self.train()
        return self.trained.module

    def __repr__(self) -> str:
        state = (
            "loaded" if self.bundle is not None else "tuned" if self.result else "trained" if self.trained else "new"
        )
        return f"LeptonModel({self.name!r}, {state})"
