"""MLflow pyfunc loader of a bundle: ``mlflow.pyfunc.load_model(DIR).predict(x)`` runs the bundle's engine.

``MLmodel`` names this module as its ``loader_module``; MLflow calls :func:`_load_pyfunc` with the
bundle directory (or, for a registered model, the copy of it under ``data/``).
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np

from lepton_tune.exceptions import BundleError

__all__ = ["BundlePyfunc"]


class BundlePyfunc:
    """A started engine behind MLflow's ``predict``: float32 ``[N, C, H, W]`` images -> ``[N, classes]`` logits."""

    def __init__(self, root: str | Path) -> None:
        from lepton_tune.bundle._load import open_bundle

        self.bundle = open_bundle(root)
        self.engine = self.bundle.engine().start()
        self._close = weakref.finalize(self, self.engine.close)  # also runs at interpreter exit

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> np.ndarray:
        return self.engine.predict(self._images(model_input))

    def _images(self, model_input: Any) -> np.ndarray:
        shape = tuple(self.bundle.input_shape)
        if isinstance(model_input, dict):
            if len(model_input) != 1:
                raise BundleError(f"predict: expected one input tensor 'images', got keys {sorted(model_input)}")
            model_input = next(iter(model_input.values()))
        if hasattr(model_input, "to_numpy"):  # a pandas DataFrame: one flattened image per row
            rows = model_input.to_numpy()
            if rows.dtype == object:
                rows = np.stack([np.asarray(r, dtype=np.float32).reshape(-1) for r in rows[:, 0]])
            model_input = rows
        x = np.asarray(model_input, dtype=np.float32)
        if x.ndim == 2 and x.shape[1] == int(np.prod(shape)):
            x = x.reshape((-1, *shape))
        elif x.shape == shape:
            x = x[None]
        return np.ascontiguousarray(x)

    def close(self) -> None:
        self._close()


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> BundlePyfunc:
    return BundlePyfunc(data_path)
