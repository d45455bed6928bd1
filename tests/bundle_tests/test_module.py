"""Every precision survives the trip to bundle files and back, loaded with weights_only=True only."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from lepton_tune.bundle._module import loader_of, rebuild_module, save_weights
from lepton_tune.config import DatasetSpec, TrainRecipe
from lepton_tune.data import load_dataset
from lepton_tune.exceptions import BundleError
from lepton_tune.models import convert_precision, train_model

PRECISIONS = ["fp32", "bf16", "int8", "int8_dynamic"]


@pytest.fixture(scope="module")
def trained():  # type: ignore[no-untyped-def]
    ds = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=1))
    return train_model("small_cnn", TrainRecipe(epochs=1), ds), ds


def _model_section(tm, precision: str) -> dict:  # type: ignore[no-untyped-def]
    return {
        "backbone": tm.backbone,
        "model_spec": None,
        "precision": precision,
        "loader": loader_of(precision),
        "image_shape": list(tm.image_shape),
        "num_classes": tm.num_classes,
    }


@pytest.mark.parametrize("precision", PRECISIONS)
def test_round_trip_is_exact(trained, precision: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tm, ds = trained
    converted = convert_precision(tm, precision, ds)
    save_weights(converted.module, tmp_path / "weights.pt")
    rebuilt = rebuild_module(tmp_path, _model_section(tm, precision))
    x = ds.test[0][:32]
    with torch.inference_mode():
        assert torch.equal(converted.module(x), rebuilt(x))


def test_pickled_object_instead_of_state_dict_is_refused(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tm, _ = trained
    torch.save(tm.module, tmp_path / "weights.pt")  # a whole pickled module: weights_only=True refuses it
    with pytest.raises(BundleError, match=r"weights\.pt: not a state dict loadable with weights_only=True"):
        rebuild_module(tmp_path, _model_section(tm, "fp32"))


def test_weights_that_do_not_fit_name_the_version(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tm, _ = trained
    save_weights(tm.module, tmp_path / "weights.pt")
    section = {**_model_section(tm, "fp32"), "num_classes": 3, "lepton_tune": "9.9"}
    with pytest.raises(BundleError, match=r"the weights do not fit 'small_cnn' .*exported it \(9\.9\)"):
        rebuild_module(tmp_path, section)


def test_non_dict_and_unknown_loader_are_refused(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tm, _ = trained
    torch.save([1, 2], tmp_path / "weights.pt")
    with pytest.raises(BundleError, match=r"must hold a state dict, got list"):
        rebuild_module(tmp_path, _model_section(tm, "fp32"))
    save_weights(tm.module, tmp_path / "weights.pt")
    with pytest.raises(BundleError, match=r"model\.loader: unknown value 'tensorrt'"):
        rebuild_module(tmp_path, {**_model_section(tm, "fp32"), "loader": "tensorrt"})


def test_weights_file_is_a_plain_state_dict(trained, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    tm, ds = trained
    save_weights(convert_precision(tm, "int8", ds).module, tmp_path / "weights.pt")
    state = torch.load(tmp_path / "weights.pt", weights_only=True)
    assert isinstance(state, dict) and all(isinstance(k, str) for k in state)
