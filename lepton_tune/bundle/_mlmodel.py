"""The MLflow side of a bundle: its ``MLmodel`` file (a pyfunc model) and Model Registry registration.

Serving modes: ``mlflow models serve -m DIR --env-manager local`` (supported) runs the bundle in the
current environment, which must have lepton-tune installed. With the default env manager
(virtualenv) MLflow would build a new environment from ``python_env.yaml``: ``requirements.txt`` pins
only public packages (torch, torchvision, mlflow) and never ``lepton-tune``, because the public index
may serve another project or version under that name, so that environment could never load the
bundle, after minutes of downloads. ``python_env.yaml`` and ``conda.yaml`` therefore list
:data:`ENV_GUARD` first: a local path that does not exist, which pip refuses before it downloads
anything (measured: the default ``mlflow models serve`` stops after 6 s with
``Invalid requirement: './STOP--this-lepton-tune-bundle-is-served-with--env-manager-local'``).

mlflow is imported only inside these functions, so loading a bundle with
:func:`lepton_tune.load_bundle` never pulls it in.
"""

from __future__ import annotations

import platform
import warnings
from pathlib import Path
from typing import Any

__all__ = ["ENV_GUARD", "LOADER_MODULE", "metadata_of", "register_bundle", "signature_of", "write_mlmodel"]

#: First dependency of the bundle's MLflow environments: a path that never exists, so that pip stops at
#: once, naming the fix, when MLflow builds a fresh environment (default env manager) for this bundle.
ENV_GUARD = "./STOP--this-lepton-tune-bundle-is-served-with--env-manager-local"

#: The pyfunc loader: ``_load_pyfunc(path)`` returns a model whose ``predict`` runs the bundle's engine.
LOADER_MODULE = "lepton_tune.bundle._pyfunc"


def signature_of(manifest: dict[str, Any]) -> Any:
    """Outputs ``label``, ``probability`` (and ``logits`` on request) per image, the ``return_logits`` param; no
    input schema.

    The model takes three input forms (files, uint8 pixels, the preprocessed tensor; see
    :mod:`lepton_tune.bundle._inputs`), and an MLflow schema describes exactly one: enforcing it would
    make MLflow reject the other two before ``predict`` sees them. The forms are described, with a
    ``curl`` example each, in the ``MLmodel`` metadata (:func:`metadata_of`) and the model card.
    """
    from mlflow.models import ModelSignature
    from mlflow.types.schema import Array, ColSpec, ParamSchema, ParamSpec, Schema

    label = "string" if manifest.get("classes") else "long"
    outputs = Schema(
        [ColSpec(label, "label"), ColSpec("double", "probability"), ColSpec(Array("float"), "logits", required=False)]
    )
    return ModelSignature(
        inputs=None, outputs=outputs, params=ParamSchema([ParamSpec("return_logits", "boolean", False)])
    )


def metadata_of(manifest: dict[str, Any]) -> dict[str, Any]:
    """The ``MLmodel`` metadata: each accepted input form with a copy-paste ``curl`` example."""
    from lepton_tune.bundle._card import input_examples

    return {
        "lepton_tune": {
            "inputs": {form: {"holds": holds, "example": example} for form, holds, example in input_examples(manifest)},
            "answer": "one row per image: label, probability (logits with params.return_logits)",
        }
    }


#: Said at the top of requirements.txt: why lepton-tune itself is not in it, and how to serve.
REQUIREMENTS_NOTE = (
    "# lepton-tune is deliberately not listed: the public package index may serve another project (or\n"
    "# another version) under that name. Serve this bundle from an environment where the lepton-tune that\n"
    "# exported it is installed: mlflow models serve -m DIR --env-manager local\n"
)


def _requirements(manifest: dict[str, Any]) -> list[str]:
    """Exact pins of the public packages the bundle needs (never lepton-tune: see :data:`REQUIREMENTS_NOTE`)."""
    libs = manifest.get("libraries", {})
    pins = [
        ("torch", libs.get("torch", "")),
        ("torchvision", libs.get("torchvision", "")),
        ("mlflow", libs.get("mlflow", "")),
    ]
    return [f"{name}=={str(version).split('+')[0]}" for name, version in pins if version]


def write_mlmodel(root: Path, manifest: dict[str, Any]) -> list[str]:
    """Make ``root`` an MLflow pyfunc model served by :mod:`lepton_tune.bundle._pyfunc`; return the files written."""
    import mlflow.pyfunc
    from mlflow.models import Model

    (root / "requirements.txt").write_text(REQUIREMENTS_NOTE + "\n".join(_requirements(manifest)) + "\n")
    (root / "python_env.yaml").write_text(
        f"python: {platform.python_version()}\nbuild_dependencies:\n- pip\ndependencies:\n- {ENV_GUARD}\n"
        "- -r requirements.txt\n"
    )
    # MLflow's default env manager reads the conda entry before python_env.yaml (KeyError 'conda' without it)
    pins = "".join(f"  - {pin}\n" for pin in [ENV_GUARD, *_requirements(manifest)])
    (root / "conda.yaml").write_text(
        f"name: lepton-bundle\nchannels:\n- conda-forge\ndependencies:\n"
        f"- python={platform.python_version()}\n- pip\n- pip:\n{pins}"
    )
    model = Model(signature=signature_of(manifest), metadata=metadata_of(manifest))
    mlflow.pyfunc.add_to_model(model, loader_module=LOADER_MODULE, python_env="python_env.yaml", conda_env="conda.yaml")
    model.save(str(root / "MLmodel"))
    return sorted(
        p.name for p in root.iterdir() if p.name in ("MLmodel", "requirements.txt", "python_env.yaml", "conda.yaml")
    )


def register_bundle(
    root: Path, name: str, *, tracking_uri: str, experiment_id: str | None = None, alias: str | None = None
) -> str:
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
            mlflow.set_tags(
                {"lepton.study": study["name"], "lepton.trial": str(study["trial"]), "lepton.bundle": "true"}
            )
            with warnings.catch_warnings():  # an input example would start the engine just to log it
                warnings.filterwarnings("ignore", message=".*input example was not provided.*")
                info = mlflow.pyfunc.log_model(
                    name="bundle",
                    loader_module=LOADER_MODULE,
                    data_path=str(root),
                    signature=signature_of(manifest),
                    pip_requirements=_requirements(manifest),
                    registered_model_name=name,
                    metadata=metadata_of(manifest),
                )
        version = str(info.registered_model_version)
        if alias:
            MlflowClient(tracking_uri).set_registered_model_alias(name, alias, version)
        return version
    finally:
        mlflow.set_tracking_uri(previous)
