"""MLflow pyfunc loader of a bundle: ``mlflow.pyfunc.load_model(DIR).predict(x)`` runs the bundle's engine.

``MLmodel`` names this module as its ``loader_module``; MLflow calls :func:`_load_pyfunc` with the
bundle directory (or, for a registered model, the copy of it under ``data/``).

``predict`` takes image files (base64 or bytes), uint8 pixels or the preprocessed tensor (see
:mod:`lepton_tune.bundle._inputs`), preprocesses files and pixels with the very function
``lepton-tune predict`` uses (:func:`lepton_tune.data.iter_preprocessed`, same limits), and answers
one row per image: ``label``, ``probability`` and, with ``params={"return_logits": True}``, ``logits``.
Bad input raises an ``MlflowException`` with ``INVALID_PARAMETER_VALUE`` (HTTP 400 from ``mlflow models
serve``) carrying the same text the CLI prints; the engine keeps serving. One engine per bundle per
host: see :mod:`lepton_tune.bundle._serving`.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import numpy as np

from lepton_tune.bundle._answer import answer_frame
from lepton_tune.bundle._inputs import ParsedInput, parse_input
from lepton_tune.bundle._serving import ServingLock
from lepton_tune.exceptions import DataError, EngineInputError, LeptonTuneError

__all__ = ["BundlePyfunc"]


class BundlePyfunc:
    """A started engine behind MLflow's ``predict``: images in, one ``label``/``probability`` row per image out."""

    def __init__(self, root: str | Path) -> None:
        from lepton_tune.bundle._load import open_bundle
        from lepton_tune.bundle._manifest import manifest_digest

        self.bundle = open_bundle(root)
        self.lock = ServingLock(manifest_digest(self.bundle.root), str(self.bundle.root)).acquire()
        try:
            self.engine = self.bundle.engine().start()
        except BaseException:
            self.lock.release()
            raise
        self._close = weakref.finalize(self, _shut, self.engine, self.lock)  # also runs at interpreter exit

    def predict(self, model_input: Any, params: dict[str, Any] | None = None) -> Any:
        """Classify ``model_input``; bad input is an MlflowException (HTTP 400), an engine failure HTTP 500."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

        try:
            return self._predict(model_input, params or {})
        except (DataError, EngineInputError) as exc:
            raise MlflowException(str(exc), error_code=INVALID_PARAMETER_VALUE) from exc
        except LeptonTuneError as exc:
            raise MlflowException(f"the bundle's engine failed: {exc}", error_code=INTERNAL_ERROR) from exc

    def _predict(self, model_input: Any, params: dict[str, Any]) -> Any:
        return_logits = params.get("return_logits", False)
        if not isinstance(return_logits, (bool, np.bool_)):
            raise DataError(f"params.return_logits: must be true or false, got {return_logits!r}")
        parsed = parse_input(model_input, self.bundle.input_shape)
        return answer_frame(self._logits(parsed), self.bundle.classes, return_logits=bool(return_logits))

    def _logits(self, parsed: ParsedInput) -> np.ndarray:
        from lepton_tune.data import iter_preprocessed

        if parsed.tensor is not None:
            return self.engine.predict(parsed.tensor)
        # the preprocessing of `lepton-tune predict`, chunk by chunk (bounded memory for a large request)
        parts = [
            self.engine.predict(np.ascontiguousarray(images.numpy(), dtype=np.float32))
            for _, images in iter_preprocessed(parsed.sources, self.bundle.preprocessing)
        ]
        if not parts:
            return np.zeros((0, int(self.bundle.manifest["model"]["num_classes"])), dtype=np.float32)
        return np.concatenate(parts)

    def get_raw_model(self) -> BundlePyfunc:
        """What ``PyFuncModel.get_raw_model()`` returns: this object, with its ``engine``, ``bundle`` and ``close``."""
        return self

    def close(self) -> None:
        """Stop the engine's shards and release the serving lock (also done at interpreter exit)."""
        self._close()


def _shut(engine: Any, lock: ServingLock) -> None:
    try:
        engine.close()
    finally:
        lock.release()


def _load_pyfunc(data_path: str, model_config: dict[str, Any] | None = None) -> BundlePyfunc:
    return BundlePyfunc(data_path)
