"""Your model, your images: a small CNN trained on digits, saved as a state dict, a .pt2 program and ONNX;
the digits as PNG class folders; one command searches each form, export + predict reproduce the accuracy."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.e2e_tests.conftest import run_cli

pytestmark = pytest.mark.slow

FACTORY = """
from torch import nn


def make(num_classes=10):
    return nn.Sequential(nn.AvgPool2d(4), nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(16 * 64, num_classes))
"""
PROTOCOL = "{warmup: 2, requests: 20, repeats: 1, concurrency: 2, probe_requests: 0, noise_threshold: 4.0}"


@pytest.fixture(scope="module")
def user_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a user has: weights of a CNN trained on digits (3 forms) and 32x32 PNGs in class folders."""
    import sys

    import torch
    from PIL import Image
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("yours")
    (root / "tinycnn.py").write_text(FACTORY)
    sys.path.insert(0, str(root))
    try:
        from tinycnn import make
    finally:
        sys.path.remove(str(root))
    digits = load_digits()
    images, labels = digits.images[:600], digits.target[:600]
    for i, (img, label) in enumerate(zip(images, labels)):
        folder = root / "pngs" / str(label)
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray((img * 16).clip(0, 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR).save(
            folder / f"{i:04d}.png"
        )
    torch.manual_seed(0)
    x = torch.nn.functional.interpolate(
        torch.tensor(images, dtype=torch.float32).unsqueeze(1) / 16, size=32, mode="bilinear"
    )
    y = torch.tensor(labels)
    model = make(10)
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for _ in range(15):
        for batch in torch.randperm(len(x)).split(32):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[batch]), y[batch]).backward()
            opt.step()
    model.eval()
    torch.save(model.state_dict(), root / "cnn.pt")
    torch.export.save(
        torch.export.export(model, (x[:2],), dynamic_shapes=({0: torch.export.Dim("batch")},)), root / "cnn.pt2"
    )
    torch.onnx.export(
        model,
        (x[:1],),
        str(root / "cnn.onnx"),
        dynamo=False,
        input_names=["input"],
        output_names=["output"],
        dynamic_axes={"input": {0: "batch"}, "output": {0: "batch"}},
    )
    return root


def _env(root: Path) -> dict[str, str]:
    return {
        "LEPTON_TUNE_CACHE": str(root / "cache"),
        "PYTHONPATH": os.pathsep.join([str(root), os.environ.get("PYTHONPATH", "")]),
    }


def _accuracy_files(study_file: Path) -> tuple[list[Path], list[int]]:
    """The accuracy subset as files, in the order the imagefolder reader numbers them."""
    from lepton_tune.config import load_study
    from lepton_tune.data import IMAGE_EXTENSIONS, load_dataset

    spec = load_study(study_file)
    dataset = load_dataset(spec.dataset)
    files, labels = [], []
    for label, name in enumerate(dataset.classes):
        found = sorted(
            p for p in (Path(str(spec.dataset.path)) / name).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS
        )
        files += found
        labels += [label] * len(found)
    pick = dataset.split_indices["test"]
    return [files[i] for i in pick], [labels[i] for i in pick]


@pytest.mark.parametrize("form", ["factory", "pt2", "onnx"])
def test_one_command_searches_your_model_and_the_bundle_reproduces_its_accuracy(
    user_files: Path, form: str, tmp_path: Path
) -> None:
    model = {
        "factory": ["--model", "tinycnn:make", "--weights", str(user_files / "cnn.pt")],
        "pt2": ["--model", str(user_files / "cnn.pt2")],
        "onnx": ["--model", str(user_files / "cnn.onnx")],
    }[form]
    proc = run_cli(
        "search",
        *model,
        "--data",
        str(user_files / "pngs"),
        "--max-accuracy-drop",
        "1.0",
        "--n-trials",
        "4",
        "--calibration-images",
        "100",
        "--accuracy-images",
        "200",
        "--protocol",
        PROTOCOL,
        "--run-dir",
        "runs",
        "--json",
        "--quiet",
        "--no-tracking",
        "--no-report",
        "--no-confirm",
        cwd=tmp_path,
        env=_env(user_files),
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout)
    study_file = next((tmp_path / "runs").glob("*.yaml"))
    assert f"edit and re-run: lepton-tune search {Path('runs') / study_file.name}" in proc.stderr
    assert summary["budgets"] == {"accuracy_drop": 1.0}
    assert summary["pareto"], summary  # a feasible front
    baseline = summary["baseline"][0]["values"]
    assert baseline["accuracy_drop"] == 0.0 and baseline["accuracy"] > 0.8
    for point in summary["pareto"]:
        values = point["values"]
        assert values["accuracy_drop"] <= 1.0
        assert values["accuracy_drop"] == pytest.approx((baseline["accuracy"] - values["accuracy"]) * 100, abs=1e-6)
    export = run_cli(
        "export",
        "--run-dir",
        "runs",
        "--require",
        "accuracy_drop<=1.0",
        "--out",
        "bundle",
        *(["--trust-code"] if form == "factory" else []),
        cwd=tmp_path,
        env=_env(user_files),
    )
    assert export.returncode == 0, export.stderr[-3000:]
    manifest_text = (tmp_path / "bundle" / "lepton.yaml").read_text()
    files, labels = _accuracy_files(study_file)
    assert len(files) == 200
    pred = run_cli(
        "predict",
        "bundle",
        *map(str, files),
        "--json",
        *(["--trust-code"] if form == "factory" else []),
        cwd=tmp_path,
        env=_env(user_files),
    )
    assert pred.returncode == 0, pred.stderr[-3000:]
    rows = json.loads(pred.stdout)
    import yaml

    manifest = yaml.safe_load(manifest_text)
    classes = manifest["classes"]
    got = sum(classes.index(r["label"]) == y for r, y in zip(rows, labels)) / len(labels)
    assert got == pytest.approx(manifest["measured"]["metrics"]["accuracy"], abs=1.5 / len(labels))


def test_a_model_that_does_not_fit_the_folder_is_refused_with_exit_2_naming_both(
    user_files: Path, tmp_path: Path
) -> None:
    nine = tmp_path / "nine"
    shutil.copytree(user_files / "pngs", nine)
    shutil.rmtree(nine / "9")
    classes = run_cli(
        "search",
        "--model",
        "tinycnn:make",
        "--weights",
        str(user_files / "cnn.pt"),
        "--data",
        str(nine),
        "--run-dir",
        "runs",
        "--no-tracking",
        cwd=tmp_path,
        env=_env(user_files),
    )
    assert classes.returncode == 2, classes.stderr[-2000:]
    assert "has 10 classes (outputs), but" in classes.stderr and "has 9 classes" in classes.stderr
    channels = run_cli(
        "search",
        "--model",
        str(user_files / "cnn.pt2"),
        "--data",
        str(user_files / "pngs"),
        "--channels",
        "3",
        "--run-dir",
        "runs",
        "--no-tracking",
        cwd=tmp_path,
        env=_env(user_files),
    )
    assert channels.returncode == 2, channels.stderr[-2000:]
    assert "takes 1-channel images" in channels.stderr and "read as 3-channel" in channels.stderr
