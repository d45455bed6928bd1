from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from lepton_tune.config import BACKBONES, ModelSpec
from lepton_tune.exceptions import ModelError
from lepton_tune.models import REGISTRY, build_model, model_profile


def test_registry_matches_config_backbones() -> None:
    assert tuple(REGISTRY) == BACKBONES


@pytest.mark.parametrize("name", BACKBONES)
def test_every_backbone_builds_for_small_grey_inputs(name: str) -> None:
    model = build_model(name, num_classes=7, image_shape=(1, 16, 16)).eval()
    with torch.no_grad():
        assert model(torch.zeros(2, 1, 16, 16)).shape == (2, 7)


def test_small_input_adaptation_keeps_resolution() -> None:
    small = build_model("resnet18", num_classes=10, image_shape=(3, 32, 32))
    large = build_model("resnet18", num_classes=10, image_shape=(3, 224, 224))
    assert small.conv1.stride == (1, 1) and small.conv1.kernel_size == (3, 3)
    assert large.conv1.stride == (2, 2) and large.conv1.kernel_size == (7, 7)
    mb = build_model("mobilenet_v3_small", num_classes=10, image_shape=(3, 32, 32))
    assert all(m.momentum == 0.1 for m in mb.modules() if isinstance(m, nn.BatchNorm2d))


def test_unknown_backbone() -> None:
    with pytest.raises(ModelError, match=r"backbone: unknown name 'resnet9'; choose one of small_cnn, resnet18"):
        build_model("resnet9", num_classes=10, image_shape=(3, 32, 32))


def test_profile_counts_params_and_flops() -> None:
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 5))
    assert model_profile(model, (3, 2, 2)) == {"params": 65, "flops": 2 * 12 * 5}
    cnn = build_model("small_cnn", num_classes=10, image_shape=(1, 16, 16))
    prof = model_profile(cnn, (1, 16, 16))
    assert prof["params"] == sum(p.numel() for p in cnn.parameters()) and prof["flops"] > 1_000_000


def test_user_factory_and_weights(tmp_path: Path) -> None:
    spec = ModelSpec(python="tests.models_tests.user_models:linear")
    model = build_model(spec, num_classes=3, image_shape=(1, 16, 16))
    torch.save(model.state_dict(), tmp_path / "w.pt")
    again = build_model(
        ModelSpec(python=spec.python, weights=str(tmp_path / "w.pt")), num_classes=3, image_shape=(1, 16, 16)
    )
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), again.state_dict().values()))


def test_user_factory_errors(tmp_path: Path) -> None:
    shape = (1, 16, 16)
    with pytest.raises(ModelError, match=r"model\.python: cannot import module 'no_such_pkg\.mod'"):
        build_model(ModelSpec(python="no_such_pkg.mod:make"), num_classes=3, image_shape=shape)
    with pytest.raises(
        ModelError, match=r"model\.python: module 'tests\.models_tests\.user_models' has no callable 'nope'"
    ):
        build_model(ModelSpec(python="tests.models_tests.user_models:nope"), num_classes=3, image_shape=shape)
    with pytest.raises(ModelError, match=r"must return a torch\.nn\.Module, got dict"):
        build_model(ModelSpec(python="tests.models_tests.user_models:not_a_module"), num_classes=3, image_shape=shape)
    with pytest.raises(ValueError, match=r"model: give exactly one of python, torchvision, file; got none"):
        ModelSpec()  # a model section names its model (a factory, a torchvision name or a file)


def test_user_weights_errors(tmp_path: Path) -> None:
    spec = {"python": "tests.models_tests.user_models:linear"}
    shape = (1, 16, 16)
    with pytest.raises(ModelError, match=r"model\.weights: file '.*missing\.pt' does not exist"):
        build_model(ModelSpec(**spec, weights=str(tmp_path / "missing.pt")), num_classes=3, image_shape=shape)
    torch.save({"0.weight": torch.zeros(2, 2)}, tmp_path / "wrong.pt")
    with pytest.raises(ModelError, match=r"wrong\.pt: weights do not fit 'tests\.models_tests\.user_models:linear'"):
        build_model(ModelSpec(**spec, weights=str(tmp_path / "wrong.pt")), num_classes=3, image_shape=shape)
    torch.save(nn.Linear(2, 2), tmp_path / "module.pt")  # a whole pickled module, not a state dict
    with pytest.raises(
        ModelError,
        match=r"module\.pt: model\.weights must be a state dict loadable with torch\.load\(weights_only=True\)",
    ):
        build_model(ModelSpec(**spec, weights=str(tmp_path / "module.pt")), num_classes=3, image_shape=shape)
    torch.save([torch.zeros(1)], tmp_path / "list.pt")
    with pytest.raises(ModelError, match=r"list\.pt: model\.weights must hold a state dict, got list"):
        build_model(ModelSpec(**spec, weights=str(tmp_path / "list.pt")), num_classes=3, image_shape=shape)
