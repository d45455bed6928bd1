"""`lepton-tune predict`: PNG files written from digits test images, classified through the bundle."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lepton_tune.cli import main
from tests.bundle_tests._study import TinyStudy, tiny_study


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory) -> TinyStudy:
    return tiny_study(tmp_path_factory)


@pytest.fixture(scope="module")
def pngs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """40 digits test images as 32x32 PNGs (two sub-folders); name -> true label."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from lepton_tune.config import DatasetSpec
    from lepton_tune.data import load_dataset

    root = tmp_path_factory.mktemp("pngs")
    digits = load_digits()
    test = load_dataset(DatasetSpec(kind="digits", image_size=16, channels=3)).split_indices["test"][:40]
    truth = {}
    for n, i in enumerate(test):
        folder = root / ("a" if n % 2 else "b")
        folder.mkdir(exist_ok=True)
        path = folder / f"{int(i):04d}.png"
        Image.fromarray((digits.images[i] / 16 * 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR).save(path)
        truth[str(path)] = str(digits.target[i])
    return root, truth


def test_predict_json_labels(
    study: TinyStudy, pngs: tuple[Path, dict[str, str]], capfd: pytest.CaptureFixture[str]
) -> None:
    root, truth = pngs
    assert main(["predict", str(study.bundle), str(root / "a"), str(root / "b"), "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert [r["input"] for r in rows] == sorted(str(p) for p in (root / "a").iterdir()) + sorted(
        str(p) for p in (root / "b").iterdir()
    )
    assert all(set(r) == {"input", "label", "probability"} and 0.0 < r["probability"] <= 1.0 for r in rows)
    right = sum(r["label"] == truth[r["input"]] for r in rows)
    assert right >= 0.6 * len(rows), rows  # the 2-epoch model scores about 0.7-0.8 on the test split


def test_predict_agrees_with_the_bundle_engine_and_prints_lines(
    study: TinyStudy, pngs: tuple[Path, dict[str, str]], capfd: pytest.CaptureFixture[str]
) -> None:
    import lepton_tune
    from lepton_tune.bundle import read_manifest
    from lepton_tune.data import load_image_files

    root, _ = pngs
    files = sorted((root / "a").iterdir())[:5]
    assert main(["predict", str(study.bundle), *map(str, files)]) == 0
    lines = capfd.readouterr().out.strip().splitlines()
    x = load_image_files(files, read_manifest(study.bundle)["preprocessing"]).numpy()
    with lepton_tune.load_bundle(study.bundle) as engine:
        want = engine.predict(x).argmax(1)
    assert [line.split("\t")[:2] for line in lines] == [[str(f), str(k)] for f, k in zip(files, want)]


def test_predict_missing_input_names_it(study: TinyStudy, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["predict", str(study.bundle), str(tmp_path / "nope.png")]) == 2
    assert "nope.png: no such file or directory" in capfd.readouterr().err


@pytest.mark.parametrize("kind", ["fifo", "bomb", "text", "truncated"])
def test_bad_image_inputs_exit_2_with_one_line(
    study: TinyStudy, tmp_path: Path, kind: str, capfd: pytest.CaptureFixture[str]
) -> None:
    import os

    from PIL import Image

    path = tmp_path / f"{kind}.png"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "bomb":
        Image.new("L", (7_000, 7_000)).save(path, optimize=True)
    elif kind == "text":
        path.write_text("hello")
    else:
        Image.new("RGB", (64, 64), (1, 2, 3)).save(tmp_path / "ok.png")
        path.write_bytes((tmp_path / "ok.png").read_bytes()[:60])
    assert main(["predict", str(study.bundle), str(path)]) == 2
    err = capfd.readouterr().err
    assert err.startswith(f"lepton-tune predict: error: {path}: ") and err.count("\n") == 1


def test_large_directory_streams_in_chunks(study: TinyStudy, tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    from PIL import Image

    from lepton_tune.data._images import CHUNK_FILES

    for i in range(CHUNK_FILES + 40):
        Image.new("L", (16, 16), (i * 7) % 256).save(tmp_path / f"{i:04d}.png")
    assert main(["predict", str(study.bundle), str(tmp_path), "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert [r["input"] for r in rows] == sorted(str(p) for p in tmp_path.iterdir())
