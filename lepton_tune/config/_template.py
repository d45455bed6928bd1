"""A study for the user's own model and images, from the shipped template (``templates/your-model.yaml``).

``lepton-tune search --model ... --data DIR`` and ``lepton-tune init`` write this file so that the
user can read, edit and re-run it; the values are written as JSON flow mappings (valid YAML) into
the commented template, then the result is validated like any study file.
"""

from __future__ import annotations

import json
import re
from importlib import resources
from typing import Any

__all__ = ["IMAGENET_MEAN", "IMAGENET_STD", "model_space", "model_study_yaml", "study_name_for"]

#: torchvision's ImageNet convention (resize 256, center crop 224, these per-channel statistics).
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def study_name_for(model: str) -> str:
    """A study name from the model's name: ``models/net.pt2`` -> ``net-pt2``; ``pkg.mod:make`` -> ``pkg.mod-make``.

    Example:
        >>> study_name_for("/tmp/cnn.onnx"), study_name_for("resnet18")
        ('cnn-onnx', 'resnet18')
    """
    base = re.split(r"[\\/]", model.rstrip("/\\"))[-1]
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", base.replace(".", "-").replace(":", "-")).strip("-.") or "my-model"
    return name[:120]


def model_space(form: str, runtimes: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Search-space params and constraints for a model ``form`` served by ``runtimes``.

    Only what the form can run is searched (an ONNX file: ONNX Runtime, fp32 or int8; a saved graph:
    fp32 eager, int8 through ONNX Runtime), so few trials are spent on infeasible points.
    """
    if form == "onnx":
        runtimes = ["onnxruntime"]
    precisions = ["fp32", "int8"] if form in ("onnx", "export", "torchscript") else ["fp32", "bf16", "int8"]
    params: dict[str, Any] = {
        "precision": {"choices": precisions},
        "runtime": {"choices": runtimes} if len(runtimes) > 1 else runtimes[0],
        "shards": {"low": 1, "high": "auto"},
        "threads_per_shard": {"low": 1, "high": "auto"},
        "batch_size": {"choices": [1, 4, 16]},
        "max_wait_ms": {"choices": [0.0, 2.0]},
        "pool_slots": 32,
    }
    constraints = ["shards * threads_per_shard <= cores"]
    if "onnxruntime" in runtimes and len(runtimes) > 1:
        constraints.append('runtime == "eager" or precision != "bf16"')  # ORT has few bf16 CPU kernels
    if form in ("export", "torchscript") and "onnxruntime" in runtimes:
        constraints.append('runtime == "onnxruntime" or precision == "fp32"')  # torch int8 needs the Python module
    elif form in ("export", "torchscript"):
        params["precision"] = "fp32"
    return params, constraints


def _flow(value: Any) -> str:
    return json.dumps(value)


def model_study_yaml(
    *,
    name: str,
    model: dict[str, Any],
    dataset: dict[str, Any],
    params: dict[str, Any],
    constraints: list[str],
    budgets: dict[str, float],
    n_trials: int = 20,
    protocol: dict[str, Any] | None = None,
) -> str:
    """The commented study text for the user's ``model`` on ``dataset`` (see the template's comments).

    Example:
        >>> text = model_study_yaml(name="m", model={"torchvision": "resnet18", "weights": "/w.pt"},
        ...                         dataset={"kind": "imagefolder", "path": "/imgs", "eval_only": True},
        ...                         params={"precision": "fp32"}, constraints=[], budgets={})
        >>> "torchvision" in text and text.startswith("# Written by")
        True
    """
    template = resources.files("lepton_tune.config").joinpath("templates/your-model.yaml").read_text()
    return template.format(
        name=name,
        model=_flow(model),
        dataset=_flow(dataset),
        params=_flow(params),
        constraints=_flow(constraints),
        budgets=_flow(budgets),
        n_trials=int(n_trials),
        protocol=_flow(protocol or {}),
    )
