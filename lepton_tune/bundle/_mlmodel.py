"""The MLflow side of a bundle: its ``MLmodel`` file (a pyfunc model) and Model Registry registration.

mlflow is imported only inside these functions, so loading a bundle with
:func:`lepton_tune.load_bundle` never pulls it in.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Any

__all__ = ["LOADER_MODULE", "register_bundle", "signature_of", "write_mlmodel"]

#: The pyfunc loader: ``_load_pyfunc(path)`` returns a model whose ``predict`` runs the bundle's engine.
LOADER_MODULE = "lepton_tune.bundle._pyfunc"


def signature_of(manifest: dict[str, Any]) -> Any:
    """Tensor signature: float32 ``[-1, C, H, W]`` in, float32 ``[-1, classes]`` (logits) out."""
    import numpy as np
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Schema, TensorSpec

    c, h, w = (int(v) for v in manifest["model"]["image_shape"])
    n = int(manifest["model"]["num_classes"])
    return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.float32), (-1, c, h, w), "images")]),
                          outputs=Schema([TensorSpec(np.dtype(np.float32), (-1, n), "logits")]))


def _requirements(manifest: dict[str, Any]) -> list[str]:
    libs = manifest.get("libraries", {})
    return [f"lepton-tune=={libs.get('lepton_tune', '')}", f"torch=={libs.get('torch', '').split('+')[0]}",
            f"torchvision=={libs.get('torchvision', '').split('+')[0]}", f"mlflow=={libs.get('mlflow', '')}"]


def write_mlmodel(root: Path, manifest: dict[str, Any]) -> None:
    """Make ``root`` an MLflow pyfunc model served by :mod:`lepton_tune.bundle._pyfunc`."""
    import mlflow.pyfunc
    from mlflow.models import Model

    (root / "requirements.txt").write_text("\n".join(_requirements(manifest)) + "\n")
    (root / "python_env.yaml").write_text(
        f"python: {platform.python_version()}\nbuild_dependencies:\n- pip\ndependencies:\n- -r requirements.txt\n")
    model = Model(signature=signature_of(manifest))
    mlflow.pyfunc.add_to_model(model, loader_module=LOADER_MODULE, python_env="python_env.yaml")
    model.save(str(root / "MLmodel"))


def register_bundle(root: Path, name: str, *, tracking_uri: str, experiment_id: str | None = None,
                    alias: str | None = None) -> str:
    """Log the bundle as a pyfunc model in a run and register it as ``name`` (with ``alias``); return the version.

    ``mlflow.pyfunc.load_model(f"models:/{name}@{alias}")`` then loads it (checksums verified).
    """
    import mlflow
    import mlflow.pyfunc
    from mlflow import MlflowClient

    from lepton_tune.bundle._manifest import read_manifest

    manifest = read_manifest(root)
    previous = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        study = manifest["study"]
        with mlflow.start_run(experiment_id=experiment_id, run_name=f"export {study['name']} trial {study['trial']}"):
            mlflow.set_tags({"lepton.study": study["name"], "lepton.trial": str(study["trial"]), "lepton.bundle": "true"})
            with warnings.catch_warnings():  # an input example would start the engine just to log it
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name="bundle", loader_module=LOADER_MODULE, data_path=str(root), signature=signature_of(manifest),
                    pip_requirements=_requirements(manifest), registered_model_name=name,
                )
        version = str(info.registered_model_version)
        if alias:
            MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
        return version
    finally:
        mlflow.set_tracking_uri(previous)
