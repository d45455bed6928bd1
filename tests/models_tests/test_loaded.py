"""Models loaded as given: torchvision name + weights, .pt2, TorchScript, ONNX; no file-supplied Python runs."""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

import pytest
import torch

from lepton_tune.config import ModelSpec
from lepton_tune.exceptions import ConfigError, ModelError
from lepton_tune.models import (
    FileModel,
    SmallCNN,
    build_model,
    check_model_fits,
    check_weights_fit,
    describe_model,
)


@pytest.fixture(scope="module")
def net() -> torch.nn.Module:
    torch.manual_seed(0)
    return SmallCNN(10, 1).eval()


def _pt2(net: torch.nn.Module, path: Path) -> Path:
    program = torch.export.export(net, (torch.zeros(2, 1, 16, 16),), dynamic_shapes=({0: torch.export.Dim("batch")},))
    torch.export.save(program, path)
    return path


class _Plant:
    """Unpickling this writes a marker file: proof that code from the file ran."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.write_text, (self.marker, "ran"))


def test_each_file_form_serves_the_same_outputs_and_declares_its_shapes(tmp_path: Path, net: torch.nn.Module) -> None:
    x = torch.rand(3, 1, 16, 16)
    with torch.inference_mode():
        want = net(x)
    torch.jit.script(net).save(str(tmp_path / "m.ts"))
    pytest.importorskip("onnxruntime")
    torch.onnx.export(
        net,
        (x[:1],),
        str(tmp_path / "m.onnx"),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "b"}, "output": {0: "b"}},
    )
    for name in ("m.pt2", "m.ts", "m.onnx"):
        if name == "m.pt2":
            _pt2(net, tmp_path / name)
        model = build_model(ModelSpec(file=str(tmp_path / name)), num_classes=10, image_shape=(1, 16, 16))
        assert isinstance(model, FileModel) and model.train().training is not False  # train() is a no-op flag
        with torch.inference_mode():
            assert torch.allclose(model(x), want, atol=1e-4), name
        restored = pickle.loads(pickle.dumps(model))  # what travels to a shard: the bytes, loaded again there
        assert torch.allclose(restored(x), want, atol=1e-4)
        info = describe_model(model)
        assert info["channels"] == 1, (name, info)
        if name != "m.ts":
            assert info["size"] == (16, 16) and info["classes"] == 10 and info["dynamic_batch"] is True


def test_a_mismatch_with_the_images_names_both_values(tmp_path: Path, net: torch.nn.Module) -> None:
    model = build_model(ModelSpec(file=str(_pt2(net, tmp_path / "m.pt2"))), num_classes=10, image_shape=(1, 16, 16))
    check_model_fits(model, model_label="m.pt2", data_label="imgs", num_classes=10, image_shape=(1, 16, 16))
    with pytest.raises(
        ConfigError, match=r"m.pt2 takes 1-channel images, but the images in imgs are read as 3-channel"
    ):
        check_model_fits(model, model_label="m.pt2", data_label="imgs", num_classes=10, image_shape=(3, 16, 16))
    with pytest.raises(ConfigError, match=r"m.pt2 has 10 classes \(outputs\), but imgs has 7 classes"):
        check_model_fits(model, model_label="m.pt2", data_label="imgs", num_classes=7, image_shape=(1, 16, 16))
    with pytest.raises(ConfigError, match=r"takes 16x16 inputs, but the images in imgs are prepared as 32x32"):
        check_model_fits(model, model_label="m.pt2", data_label="imgs", num_classes=10, image_shape=(1, 32, 32))
    torch.save(net.state_dict(), tmp_path / "w.pt")
    with pytest.raises(ConfigError, match=r"\(weights w.pt\) has 10 classes \(outputs\), but imgs has 4 classes"):
        check_weights_fit(tmp_path / "w.pt", model_label="f", data_label="imgs", num_classes=4, channels=1)


def test_torchvision_name_with_weights_builds_that_architecture(tmp_path: Path) -> None:
    import torchvision

    ref = torchvision.models.mobilenet_v3_small(weights=None, num_classes=3).eval()
    torch.save(ref.state_dict(), tmp_path / "w.pt")
    model = build_model(
        ModelSpec(torchvision="mobilenet_v3_small", weights=str(tmp_path / "w.pt")),
        num_classes=3,
        image_shape=(3, 64, 64),
    ).eval()
    x = torch.rand(1, 3, 64, 64)
    with torch.inference_mode():
        assert torch.equal(model(x), ref(x))  # no small-input adaptation: the user's architecture as trained
    with pytest.raises(ModelError, match="torchvision has no classification model 'resnet_nope'"):
        build_model(
            ModelSpec(torchvision="resnet_nope", weights=str(tmp_path / "w.pt")), num_classes=3, image_shape=(3, 64, 64)
        )


def test_model_spec_forms_are_exclusive_and_never_trained() -> None:
    assert ModelSpec(file="m.pt2").train is False and ModelSpec(file="m.onnx").form == "onnx"
    with pytest.raises(ValueError, match="give exactly one of python, torchvision, file"):
        ModelSpec(file="m.pt2", torchvision="resnet18")
    with pytest.raises(ValueError, match="served as given and never trained"):
        ModelSpec(file="m.pt2", train=True)
    with pytest.raises(ValueError, match="torchvision 'resnet18' needs your state dict"):
        ModelSpec(torchvision="resnet18")


def test_a_pt2_whose_sample_inputs_would_unpickle_code_is_refused_before_torch_reads_it(
    tmp_path: Path, net: torch.nn.Module
) -> None:
    path = _pt2(net, tmp_path / "m.pt2")
    marker = tmp_path / "ran.txt"
    src = zipfile.ZipFile(path)
    bad = tmp_path / "bad.pt2"
    with zipfile.ZipFile(bad, "w") as out:
        for name in src.namelist():
            data = src.read(name)
            if "/data/sample_inputs/" in name:
                buf = io.BytesIO()
                torch.save({"x": _Plant(marker)}, buf)  # weights_only=True fails on it; torch would retry without
                data = buf.getvalue()
            out.writestr(name, data)
    model = FileModel.from_file(bad, "export")
    with pytest.raises(ModelError, match="could run code from the file, so it is refused"):
        model(torch.zeros(1, 1, 16, 16))
    assert not marker.exists()


class _Hook(torch.nn.Module):
    """A module whose forward calls Python: TorchScript can run it in-process but cannot save it."""

    @torch.jit.ignore
    def side(self, x):  # unannotated: TorchScript treats it as Tensor -> Tensor
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.side(x)


def test_torchscript_cannot_carry_python_and_a_planted_pickle_does_not_run(
    tmp_path: Path, net: torch.nn.Module
) -> None:
    with pytest.raises(Exception, match="(?i)python"):
        torch.jit.script(_Hook()).save(str(tmp_path / "hook.ts"))  # TorchScript refuses to save Python calls
    torch.jit.script(net).save(str(tmp_path / "m.ts"))
    marker = tmp_path / "ran.txt"
    src = zipfile.ZipFile(tmp_path / "m.ts")
    bad = tmp_path / "bad.ts"
    with zipfile.ZipFile(bad, "w") as out:
        for name in src.namelist():
            out.writestr(
                name, pickle.dumps(_Plant(marker), protocol=2) if name.endswith("/data.pkl") else src.read(name)
            )
    with pytest.raises(ModelError, match="is not a TorchScript file"):
        FileModel.from_file(bad, "torchscript")(torch.zeros(1, 1, 16, 16))
    assert not marker.exists()
