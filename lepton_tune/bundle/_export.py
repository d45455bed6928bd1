"""``export_bundle``: rebuild a study trial's served model from the cache and write it as a bundle."""

from __future__ import annotations

import platform
import shutil
import tempfile
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lepton_tune.bundle._card import model_card
from lepton_tune.bundle._manifest import FORMAT_VERSION, file_entry, read_manifest, write_manifest
from lepton_tune.bundle._mlmodel import write_mlmodel
from lepton_tune.bundle._module import check_trust
from lepton_tune.bundle._public import public_dataset, public_host, public_storage
from lepton_tune.bundle._replace import check_out_dir, storage_dirs, swap_in
from lepton_tune.bundle._runtimes import Served, load_served, prepare_served, write_served
from lepton_tune.config import ENGINE_FIELDS, DatasetSpec, EngineConfig, ModelSpec, TrainRecipe
from lepton_tune.exceptions import BundleError

__all__ = ["export_bundle"]


def _libraries() -> dict[str, str]:
    import numpy
    import torch
    import torchvision

    from lepton_tune import __version__

    libs = {
        "lepton_tune": __version__,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
    }
    try:
        import mlflow

        libs["mlflow"] = mlflow.__version__
    except ImportError:  # pragma: no cover - mlflow is a dependency; a bundle is still valid without it
        pass
    return libs


def _trial_parts(study: Any, trial: Any) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    spec = study.user_attrs.get("spec")
    from lepton_tune.front import TrialRecord  # exporting reads a study (optuna); loading a bundle never does

    point = TrialRecord.of(trial).point
    metrics = TrialRecord.of(trial).metrics
    if not isinstance(spec, dict) or not isinstance(point, dict):
        raise BundleError(
            f"study {study.study_name!r}: trial {trial.number} lacks the 'spec'/'point' attributes a "
            "lepton-tune study records; export only works on studies run by 'lepton-tune search'"
        )
    if not metrics or TrialRecord.of(trial).status == "failed":
        raise BundleError(
            f"study {study.study_name!r}: trial {trial.number} was not measured "
            f"({TrialRecord.of(trial).reason or trial.state.name}); choose a COMPLETE trial"
        )
    return spec, point, metrics


def export_bundle(
    study: Any,
    trial: Any,
    out_dir: str | Path,
    *,
    reason: str = "",
    overwrite: bool = False,
    storage: str | None = None,
    protect: Sequence[str | Path] = (),
    trust_code: bool | None = None,
) -> Path:
    """Write the served model of ``trial`` as a production bundle in ``out_dir``.

    The trained weights come from the model cache (retrained if missing, from the recipe the study
    recorded), converted to the trial's precision exactly as the trial was; the EngineConfig, the
    measured values with their protocol, the host fingerprint and the preprocessing come from the
    study. The directory is written beside ``out_dir`` and renamed into place when complete.

    ``overwrite`` replaces ``out_dir`` only if it is an empty directory or a lepton-tune bundle
    holding nothing else; never the current or home directory, ``/``, their parents, the study's
    run directory or the directories in ``protect`` (see :mod:`lepton_tune.bundle._replace`).
    A user-model factory named in the study database is imported only with ``trust_code``
    (or ``LEPTON_TUNE_TRUST_CODE=1``). The bundle records no storage host, user or password, no
    absolute dataset path and no host name (see :mod:`lepton_tune.bundle._public`).

    Example:
        >>> sel = select_trial(study, requires=["accuracy>=0.9"], prefer="latency_p95_ms")  # doctest: +SKIP
        >>> export_bundle(study, sel.trial, "bundle/", reason=sel.reason)  # doctest: +SKIP
        PosixPath('bundle')

    Raises:
        BundleError: ``out_dir`` exists and is not empty (without ``overwrite``), is not a bundle or
            is a protected directory (with it), the trial was not measured, a user factory is not
            trusted, or this checkout would build a different model than the trial measured.
    """
    out = Path(out_dir)
    guarded = [*map(Path, protect), *map(Path, storage_dirs(storage))]
    check_out_dir(out, overwrite=overwrite, protect=guarded)
    spec, point, _ = _trial_parts(study, trial)
    config = EngineConfig(**{k: point[k] for k in ENGINE_FIELDS if k in point})
    user = spec.get("model") or None
    model_spec = ModelSpec(**user) if user else None
    check_trust(model_spec.python if model_spec else None, f"study {study.study_name!r}: spec.model.python", trust_code)
    rebuilt = _rebuild(trial, spec, point, config, model_spec)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    tmp.chmod(0o755)  # mkdtemp makes it private; a bundle is meant to be shared
    try:
        files = [file_entry(tmp, rel, role) for rel, role in write_served(rebuilt.served, tmp)]
        manifest = _manifest(study, trial, spec, config, rebuilt, reason=reason, storage=storage, files=files)
        (tmp / "README.md").write_text(model_card(manifest, out.name))
        files.append(file_entry(tmp, "README.md", "card"))
        files.extend(file_entry(tmp, rel, "mlflow") for rel in write_mlmodel(tmp, manifest))
        write_manifest(tmp, manifest)  # and lepton.sha256, the digest of the manifest that lists every other file
        _self_check(tmp, rebuilt.served.module, rebuilt.dataset, trust_code)
        swap_in(tmp, out, overwrite=overwrite, protect=guarded)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@dataclass(frozen=True)
class _Rebuilt:
    """What the trial served, rebuilt here: the dataset, recipe, trained model and served artifact."""

    dataset_spec: DatasetSpec
    dataset: Any
    recipe: TrainRecipe
    model_spec: ModelSpec | None
    trained: Any
    served: Served


def _rebuild(
    trial: Any, spec: dict[str, Any], point: dict[str, Any], config: EngineConfig, model_spec: ModelSpec | None
) -> _Rebuilt:
    """The trial's model, from the cache (or trained again from its recipe) and converted by the study's own step;
    refused when this checkout builds a different recipe or artifact than the trial measured."""
    from lepton_tune.data import load_dataset
    from lepton_tune.front import TrialRecord
    from lepton_tune.models import ModelCache, train_model

    dataset_spec = DatasetSpec(**spec.get("dataset", {}))
    recipe = TrainRecipe(**{k[6:]: v for k, v in point.items() if k.startswith("train.")})
    dataset, cache = load_dataset(dataset_spec), ModelCache()
    trained = train_model(
        model_spec if model_spec is not None else str(point["backbone"]), recipe, dataset, cache=cache
    )
    recorded = TrialRecord.of(trial).model
    if recorded.get("recipe_hash") and recorded["recipe_hash"] != trained.recipe_hash:
        raise BundleError(
            f"trial {trial.number}: this lepton-tune builds recipe {trained.recipe_hash}, but the trial measured "
            f"{recorded['recipe_hash']} (the training code, the dataset or the model changed since). Export with the "
            "version that ran the study, or run the study again"
        )
    if not trained.from_cache:
        warnings.warn(
            f"trial {trial.number}: the trained weights were not in the model cache ({cache.root}) and were "
            "trained again from the recorded recipe; run 'lepton-tune verify' on the bundle",
            stacklevel=3,
        )
    served = prepare_served(trained, config, dataset, cache)
    if recorded.get("artifact_hash") and recorded["artifact_hash"] != served.artifact_hash:
        raise BundleError(
            f"trial {trial.number}: this lepton-tune converts to artifact {served.artifact_hash}, but the trial served "
            f"{recorded['artifact_hash']} (the {config.precision}/{config.runtime} conversion changed since). Export "
            "with the version that ran the study, or run the study again"
        )
    return _Rebuilt(dataset_spec, dataset, recipe, model_spec, trained, served)


def _manifest(
    study: Any,
    trial: Any,
    spec: dict[str, Any],
    config: EngineConfig,
    rebuilt: _Rebuilt,
    *,
    reason: str,
    storage: str | None,
    files: list[dict[str, Any]],
) -> dict[str, Any]:
    """``lepton.yaml``: what is served and how, what was measured under which protocol, on which host."""
    from lepton_tune.front import TrialRecord

    record = TrialRecord.of(trial)
    dataset = rebuilt.dataset
    protocol = record.protocol or spec.get("protocol", {})
    accuracy_samples = len(dataset.test[1])
    if protocol.get("accuracy_samples"):
        accuracy_samples = min(accuracy_samples, int(protocol["accuracy_samples"]))
    return {
        "format_version": FORMAT_VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "study": {
            "name": study.study_name,
            "trial": trial.number,
            "storage": public_storage(storage),
            "selection": reason,
            "objectives": study.user_attrs.get("objectives"),
            "budgets": spec.get("budgets", {}),
        },
        "engine": config.model_dump(mode="json"),
        "model": _model_section(config, rebuilt),
        "dataset": public_dataset(rebuilt.dataset_spec.model_dump(mode="json")),
        "preprocessing": dataset.preprocessing(),
        "classes": list(dataset.classes),
        "measured": {
            "metrics": record.metrics,
            "spread": record.spread,
            "protocol": protocol,
            "prices": spec.get("prices", {}),
            "accuracy_samples": accuracy_samples,
            "request_pool": "the first 8-64 images of the test split (at most 8 MiB)",
            "host_id": record.host_id or study.user_attrs.get("host_id"),
            "confirms": record.confirms,
            "first_metrics": record.first_metrics or None,
            "noise": record.noise,
        },
        "host": public_host(study.user_attrs.get("host", {})),
        "libraries": _libraries(),
        "files": files,
    }


def _model_section(config: EngineConfig, rebuilt: _Rebuilt) -> dict[str, Any]:
    from lepton_tune.models import ADAPTATION_VERSION

    trained, served = rebuilt.trained, rebuilt.served
    return {
        "backbone": trained.backbone,
        # the bundle's weights replace the user's weights file: its (absolute) path is not shared
        "model_spec": _public_model_spec(rebuilt.model_spec),
        "recipe": rebuilt.recipe.model_dump(mode="json"),
        "recipe_hash": trained.recipe_hash,
        "artifact_hash": served.artifact_hash,
        "adaptation_version": ADAPTATION_VERSION,
        "precision": config.precision,
        "runtime": config.runtime,
        "device": config.device,
        "loader": served.loader,
        "image_shape": list(rebuilt.dataset.image_shape),
        "num_classes": len(rebuilt.dataset.classes),
        "params": trained.params,
        "val_accuracy": served.val_accuracy,
        "lepton_tune": _libraries()["lepton_tune"],
    }


def _public_model_spec(model_spec: ModelSpec | None) -> dict[str, Any] | None:
    """The model section a bundle records: no user path (the bundle's own files replace the user's files).

    A model file keeps only its name (its extension says its form); its bytes are the bundle's weights.
    """
    if model_spec is None:
        return None
    dumped = {**model_spec.model_dump(mode="json"), "weights": None}
    if model_spec.file:
        dumped["file"] = model_spec.label
    return dumped


def _self_check(root: Path, module: Any, dataset: Any, trust_code: bool | None) -> None:
    """The written files rebuild a module that answers exactly like the converted one."""
    import torch

    manifest = read_manifest(root)
    rebuilt = load_served(root, manifest, trust_code=trust_code)
    x = dataset.test[0][:16]
    with torch.inference_mode():
        want, got = module(x).float(), rebuilt(x).float()
    if not torch.equal(want.argmax(1), got.argmax(1)) or not torch.allclose(want, got, rtol=1e-3, atol=1e-3):
        raise BundleError(
            f"{root}: the written weights do not reproduce the trial's model outputs "
            f"(max difference {float((want - got).abs().max()):.3g}); this is a bug, please report it"
        )
