"""The backbone registry: torchvision classifiers by name (``weights=None``) plus ``small_cnn``.

Small-input adaptation (``ADAPTATION_VERSION``, part of every cache key): torchvision's nets are
made for 224x224 and shrink the input 32x before the head, so a 32x32 image ends as one pixel
after the first few layers. When the input side is at most ``SMALL_INPUT`` (64) pixels, every
backbone downsamples 16x instead (32x32 ends at 2x2): resnets/shufflenets get a 3x3 stride-1
first conv (the stem max pool stays); mobilenet_v3, efficientnet_b0, regnet and squeezenet get a
stride-1 first conv; convnext_tiny's 4x4/4 patchify stem becomes 2x2/2. (Dropping the max pool
too, the CIFAR recipe, costs 4x the FLOPs again: resnet18 at 32x32 goes from 0.28 to 1.1 GFLOPs;
benchmarks/README.md, section Accuracy, has the numbers.) Always: the first conv takes the dataset's
channel count (1 or 3), the head has ``num_classes`` outputs, and mobilenet/efficientnet
BatchNorm momentum is set to torch's default 0.1 (torchvision's 0.01 leaves running statistics far
off on small data, so validation accuracy stays near chance for many epochs).
"""

from __future__ import annotations

import hashlib
import importlib
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from lepton_tune.config import BACKBONES, ModelSpec
from lepton_tune.exceptions import ModelError

__all__ = ["ADAPTATION_VERSION", "REGISTRY", "SMALL_INPUT", "SmallCNN", "build_model", "model_identity"]

ADAPTATION_VERSION = 2
SMALL_INPUT = 64


class SmallCNN(nn.Sequential):
    """Four 3x3 conv blocks (16-32-64-128 channels, two 2x2 max pools), global average pool, linear.

    A plain ``nn.Sequential`` so that FX quantization traces it and an engine can cut it into stages.
    """

    def __init__(self, num_classes: int = 10, in_channels: int = 3) -> None:
        def block(cin: int, cout: int) -> list[nn.Module]:
            return [nn.Conv2d(cin, cout, 3, padding=1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True)]

        super().__init__(
            *block(in_channels, 16),
            *block(16, 32),
            nn.MaxPool2d(2),
            *block(32, 64),
            nn.MaxPool2d(2),
            *block(64, 128),
            nn.AdaptiveAvgPool2d(1),
            nn.Flatten(),
            nn.Linear(128, num_classes),
        )


def _tv(name: str) -> Callable[[int], nn.Module]:
    def make(num_classes: int) -> nn.Module:
        import torchvision.models as tvm

        model: nn.Module = getattr(tvm, name)(weights=None, num_classes=num_classes)
        return model

    return make


#: name -> factory(num_classes) (small-input and channel adaptation happen in build_model).
REGISTRY: dict[str, Callable[[int], nn.Module]] = {
    name: SmallCNN if name == "small_cnn" else _tv(name) for name in BACKBONES
}


def _first_conv(model: nn.Module) -> tuple[nn.Module, str, nn.Conv2d]:
    for name, mod in model.named_modules():
        if isinstance(mod, nn.Conv2d):
            parent_name, _, attr = name.rpartition(".")
            return model.get_submodule(parent_name) if parent_name else model, attr, mod
    raise ModelError("model has no Conv2d layer to adapt")  # pragma: no cover - every registry model has one


def _replace_first_conv(
    model: nn.Module, in_channels: int, *, kernel: int | None = None, stride: int | None = None
) -> None:
    parent, attr, conv = _first_conv(model)
    k = kernel if kernel is not None else conv.kernel_size[0]
    s = stride if stride is not None else conv.stride[0]
    pad = conv.padding[0] if kernel is None else (k // 2 if s == 1 else 0)
    if (in_channels, k, s) == (conv.in_channels, conv.kernel_size[0], conv.stride[0]):
        return
    new = nn.Conv2d(
        in_channels,
        conv.out_channels,
        k,
        stride=s,
        padding=pad,
        bias=conv.bias is not None,
        groups=1 if conv.groups == 1 else conv.groups,
    )
    setattr(parent, attr, new)


def _adapt(name: str, model: nn.Module, in_channels: int, small: bool) -> None:
    if name.startswith(("mobilenet", "efficientnet")):
        for mod in model.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.momentum = 0.1
    if not small:
        _replace_first_conv(model, in_channels)
    elif name.startswith(("resnet", "shufflenet")):
        _replace_first_conv(model, in_channels, kernel=3, stride=1)
    elif name == "convnext_tiny":
        _replace_first_conv(model, in_channels, kernel=2, stride=2)
    elif name == "squeezenet1_1":
        _replace_first_conv(model, in_channels, kernel=3, stride=1)
    else:  # small_cnn (already small), mobilenet_v3_*, efficientnet_b0, regnet_x_400mf
        _replace_first_conv(model, in_channels, stride=1)


def _load_user_factory(spec: ModelSpec) -> Callable[..., nn.Module]:
    module_name, _, attr = str(spec.python).partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ModelError(
            f"model.python: cannot import module '{module_name}' ({exc}). Check the name and sys.path"
        ) from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ModelError(f"model.python: module '{module_name}' has no callable '{attr}'. Check '{spec.python}'")
    return factory  # type: ignore[no-any-return]


def _load_weights(model: nn.Module, spec: ModelSpec) -> None:
    path = Path(str(spec.weights)).expanduser()
    if not path.is_file():
        raise ModelError(f"model.weights: file '{path}' does not exist. Check the path")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any unpickling failure means the same thing to the user
        raise ModelError(
            f"{path}: model.weights must be a state dict loadable with torch.load(weights_only=True) "
            f"({type(exc).__name__}: {str(exc).splitlines()[0][:200]})"
        ) from None
    if not isinstance(state, dict):
        raise ModelError(f"{path}: model.weights must hold a state dict, got {type(state).__name__}")
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise ModelError(f"{path}: weights do not fit '{spec.label}': {str(exc).splitlines()[0][:300]}") from None


def build_model(backbone: str | ModelSpec, *, num_classes: int, image_shape: tuple[int, int, int]) -> nn.Module:
    """Build a backbone by registry name, or a user model from a :class:`ModelSpec`.

    Registry models are built with ``weights=None`` and adapted to ``image_shape`` (see the module
    docstring: channel count, small-input stems at <= 64 px, BN momentum). A user model is
    ``factory(num_classes=N)`` with ``weights`` (a state dict) loaded if given, and no adaptation.

    Example:
        >>> m = build_model("small_cnn", num_classes=10, image_shape=(1, 16, 16))
        >>> m(torch.zeros(2, 1, 16, 16)).shape
        torch.Size([2, 10])

    Raises:
        ModelError: unknown backbone name, or a user factory/weights that cannot be loaded.
    """
    channels, height, width = image_shape
    if isinstance(backbone, ModelSpec):
        from lepton_tune.models._loaded import FileModel, build_torchvision

        if backbone.file:
            return FileModel.from_file(backbone.file, backbone.form)
        if backbone.torchvision:
            model = build_torchvision(backbone.torchvision, num_classes)
            if backbone.weights:
                _load_weights(model, backbone)
            return model
        if backbone.python is None:  # pragma: no cover - ModelSpec holds exactly one form
            raise ModelError("model.python: a user model needs 'package.module:factory', got None")
        model = _load_user_factory(backbone)(num_classes=num_classes)
        if not isinstance(model, nn.Module):
            raise ModelError(
                f"model.python: '{backbone.python}' must return a torch.nn.Module, got {type(model).__name__}"
            )
        if backbone.weights:
            _load_weights(model, backbone)
        return model
    if backbone not in REGISTRY:
        raise ModelError(f"backbone: unknown name '{backbone}'; choose one of {', '.join(BACKBONES)}")
    model = REGISTRY[backbone](num_classes)
    _adapt(backbone, model, channels, min(height, width) <= SMALL_INPUT)
    return model


def _file_sha(path: str | Path | None) -> str | None:
    if path is None or not Path(path).is_file():
        return None
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_identity(backbone: str | ModelSpec) -> dict[str, object]:
    """What identifies a model in the cache key (name + adaptation, or user code + weights hashes)."""
    if isinstance(backbone, str):
        return {"backbone": backbone, "adaptation": ADAPTATION_VERSION}
    if backbone.file or backbone.torchvision:  # the file's bytes (not its path) identify the model
        return {
            "form": backbone.form,
            "torchvision": backbone.torchvision,
            "file_sha256": _file_sha(backbone.file),
            "weights_sha256": _file_sha(backbone.weights),
        }
    source = None
    try:
        import inspect

        source = _file_sha(inspect.getsourcefile(importlib.import_module(str(backbone.python).partition(":")[0])))
    except (ImportError, TypeError):
        source = None
    return {
        "python": backbone.python,
        "source_sha256": source,
        "weights_sha256": _file_sha(backbone.weights),
        "train": backbone.train,
    }


def backbone_name(backbone: str | ModelSpec) -> str:
    """A short display name: the registry name, or the user factory path."""
    return backbone if isinstance(backbone, str) else backbone.label
