"""``--model ... --data DIR``: build a study for the user's own model and images from the shipped template.

Used by ``lepton-tune search`` (writes the study into the run directory, then searches it) and by
``lepton-tune init`` (only writes it). What the model declares (an ONNX graph's or a ``.pt2``
program's input shape, a network's first convolution) fills the input size and channels; flags
override; torchvision names get the ImageNet convention (resize 256, center crop 224, its mean/std).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from lepton_tune.exceptions import ConfigError

__all__ = ["add_model_arguments", "announce_study", "study_from_model", "write_model_study"]


def add_model_arguments(p: argparse.ArgumentParser, *, required: bool = False) -> None:
    """The flags of the one-command form (shared by ``search`` and ``init``)."""
    g = p.add_argument_group("your model, your images (instead of a study file)")
    g.add_argument(
        "--model",
        required=required,
        default=None,
        help="torchvision name (+ --weights), pkg.mod:factory (+ --weights), or a .pt2 / .onnx / TorchScript file",
    )
    g.add_argument("--weights", default=None, help="state dict for a torchvision name or a factory (weights_only=True)")
    g.add_argument("--data", type=Path, default=None, help="labelled images: DIR/<class>/<image>")
    g.add_argument("--classes", type=Path, default=None, help="class names in the model's output order, one per line")
    g.add_argument(
        "--max-accuracy-drop",
        type=float,
        default=None,
        metavar="PTS",
        help="accuracy points a point may lose against your model as given (budget accuracy_drop)",
    )
    g.add_argument(
        "--runtimes",
        nargs="+",
        default=None,
        choices=["eager", "compile", "onnxruntime"],
        help="runtimes to search (default: eager and onnxruntime where installed; ONNX files: onnxruntime)",
    )
    g.add_argument(
        "--image-size", type=int, default=None, help="model input side (default: from the model or the images)"
    )
    g.add_argument("--resize", type=int, default=None, help="resize the shorter side to this before the crop")
    g.add_argument(
        "--channels", type=int, choices=[1, 3], default=None, help="input channels (default: from the model)"
    )
    g.add_argument("--mean", type=float, nargs="+", default=None, help="per-channel mean on [0, 1] pixels")
    g.add_argument("--std", type=float, nargs="+", default=None, help="per-channel std on [0, 1] pixels")
    g.add_argument(
        "--color", choices=["rgb", "bgr"], default=None, help="channel order the model expects (default rgb)"
    )
    g.add_argument("--calibration-images", type=int, default=None, help="images for int8 calibration (default 256)")
    g.add_argument(
        "--accuracy-images", type=int, default=None, help="images scoring accuracy (default: all the others)"
    )
    g.add_argument(
        "--protocol",
        default=None,
        metavar="YAML",
        help="measurement overrides as a YAML mapping, e.g. '{requests: 50, repeats: 1}'",
    )


def _model_section(args: argparse.Namespace) -> dict[str, Any]:
    text = str(args.model)
    path = Path(text).expanduser()
    if path.is_file():
        if args.weights:
            raise ConfigError(f"--weights: a model file ({path.name}) carries its own weights; drop --weights")
        return {"file": str(path.resolve())}
    if any(sep in text for sep in ("/", "\\")) or text.endswith((".pt2", ".onnx", ".pt", ".pth", ".ts")):
        raise ConfigError(f"--model: file '{path}' does not exist. Check the path")
    weights = str(Path(args.weights).expanduser().resolve()) if args.weights else None
    if weights and not Path(weights).is_file():
        raise ConfigError(f"--weights: file '{weights}' does not exist. Check the path")
    if ":" in text:
        return {"python": text, "weights": weights, "train": False}
    return {"torchvision": text, "weights": weights}


def _declared(model: dict[str, Any], classes: int) -> dict[str, Any]:
    """What the model itself says about its input (channels, side); empty if it says nothing."""
    from lepton_tune.config import ModelSpec
    from lepton_tune.models import build_model, describe_model, describe_weights

    spec = ModelSpec(**model)
    if spec.torchvision:
        return {"channels": 3}
    if spec.weights:  # read from the state dict: a head that does not fit the folder is reported by the search
        return {"channels": describe_weights(spec.weights)["channels"], "size": None}
    module = build_model(spec, num_classes=classes, image_shape=(3, 224, 224))
    info = describe_model(module)
    return {"channels": info["channels"], "size": info["size"][0] if info["size"] else None}


def _first_image_side(data: Path) -> int | None:
    from lepton_tune.data import IMAGE_EXTENSIONS

    for path in sorted(data.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS:
            from PIL import Image

            with Image.open(path) as img:
                return min(img.size)
    return None


def _dataset_section(args: argparse.Namespace, model: dict[str, Any]) -> dict[str, Any]:
    from lepton_tune.config import IMAGENET_MEAN, IMAGENET_STD

    data = Path(args.data).expanduser().resolve()
    if not data.is_dir():
        raise ConfigError(f"--data: '{data}' is not a directory. Give a folder of class folders: DIR/<class>/<image>")
    classes = sum(1 for p in data.iterdir() if p.is_dir() and not p.name.startswith("."))
    declared = _declared(model, max(classes, 2))
    imagenet = "torchvision" in model
    size = args.image_size or declared.get("size") or (224 if imagenet else _first_image_side(data) or 224)
    section: dict[str, Any] = {
        "kind": "imagefolder",
        "path": str(data),
        "eval_only": True,
        "channels": args.channels or declared.get("channels") or 3,
    }
    resize = args.resize or (256 if imagenet and not args.image_size else None)
    if resize:
        section.update(resize=resize, center_crop=size)
    else:
        section["image_size"] = size
    mean, std = (
        args.mean or (list(IMAGENET_MEAN) if imagenet else None),
        args.std or (list(IMAGENET_STD) if imagenet else None),
    )
    section.update({k: v for k, v in (("mean", mean), ("std", std)) if v is not None})
    if args.color:
        section["color"] = args.color
    if args.classes:
        section["classes"] = str(Path(args.classes).expanduser().resolve())
    if args.calibration_images:
        section["calibration_images"] = args.calibration_images
    if args.accuracy_images:
        section["accuracy_images"] = args.accuracy_images
    return section


def study_from_model(args: argparse.Namespace) -> tuple[str, str]:
    """``(study name, study YAML text)`` for the flags; ConfigError (exit 2) on bad flags."""
    import importlib.util

    from lepton_tune.config import (
        ModelSpec,
        model_space,
        model_study_yaml,
        safe_load_yaml,
        study_name_for,
    )

    if args.data is None:
        raise ConfigError("--data: --model needs the labelled images (--data DIR with one folder per class)")
    model = _model_section(args)
    form = ModelSpec(**model).form
    runtimes = list(
        args.runtimes or (["eager", "onnxruntime"] if importlib.util.find_spec("onnxruntime") else ["eager"])
    )
    params, constraints = model_space(form, runtimes)
    budgets = {"accuracy_drop": float(args.max_accuracy_drop)} if args.max_accuracy_drop is not None else {}
    protocol = safe_load_yaml(args.protocol, "--protocol") if args.protocol else {}
    if not isinstance(protocol, dict):
        raise ConfigError(f"--protocol: must be a YAML mapping such as '{{requests: 50}}', got {args.protocol!r}")
    name = study_name_for(str(args.model))
    text = model_study_yaml(
        name=name,
        model=model,
        dataset=_dataset_section(args, model),
        params=params,
        constraints=constraints,
        budgets=budgets,
        n_trials=args.n_trials or 20,
        protocol=protocol,
    )
    return name, text


def write_model_study(args: argparse.Namespace, out: Path | None = None) -> Path:
    """Write the study for the flags to ``out`` (default: ``RUN_DIR/<name>.yaml``), validate it, return its path."""
    from lepton_tune._cli._common import DEFAULT_RUN_DIR
    from lepton_tune.config import load_study

    name, text = study_from_model(args)
    path = out or Path(getattr(args, "run_dir", None) or DEFAULT_RUN_DIR) / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    load_study(path)  # the written file is a valid study (bad flags surface here as ConfigError, exit 2)
    return path


def announce_study(path: Path) -> Path:
    """Say where the study file is and how to re-run it (stderr: stdout may hold ``--json``)."""
    from lepton_tune._cli._common import err_console

    err_console().print(
        f"study file: {path}\nedit and re-run: lepton-tune search {path}", markup=False, highlight=False
    )
    return path
