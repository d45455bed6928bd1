"""The served model's input forms, in process through ``mlflow.pyfunc.load_model``: files, pixels and the tensor
agree with ``lepton-tune predict``'s preprocessing; malformed input is an MlflowException (HTTP 400) with the
decoder's own text, and the model keeps answering."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lepton_tune.bundle._inputs import parse_input
from lepton_tune.exceptions import DataError
from tests.bundle_tests._study import TinyStudy

SHAPE = (3, 16, 16)


def digits_pixels(n: int, size: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """``n`` digits test images as uint8 ``[n, size, size]`` (bright ink on black, as the dataset) and their labels."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = [
        np.asarray(Image.fromarray((im / 16 * 255).astype(np.uint8)).resize((size, size), Image.BILINEAR))
        for im in digits.images[-n:]
    ]
    return np.stack(images), digits.target[-n:]


def png_bytes(pixels: np.ndarray, mode: str | None = None) -> bytes:
    buf = io.BytesIO()
    img = Image.fromarray(pixels)
    (img.convert(mode) if mode else img).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def model(study: TinyStudy) -> Iterator[Any]:
    import mlflow.pyfunc

    loaded = mlflow.pyfunc.load_model(str(study.bundle))
    yield loaded
    loaded.get_raw_model().close()  # the BundlePyfunc: stop its shards


# -- form detection, no engine ---------------------------------------------------------------------------------
def test_forms_are_told_apart_by_name_and_dtype() -> None:
    pixels, _ = digits_pixels(2)
    assert parse_input(pixels, SHAPE).form == "pixels"  # uint8
    assert parse_input(pixels.astype(np.int64), SHAPE).form == "pixels"  # JSON ints within 0-255
    assert parse_input(np.repeat(pixels[..., None], 3, axis=3), SHAPE).form == "pixels"
    assert parse_input({"files": [b64(png_bytes(pixels[0]))]}, SHAPE).form == "files"
    assert parse_input(np.array([b64(png_bytes(pixels[0]))]), SHAPE).form == "files"  # how JSON strings arrive
    assert parse_input([png_bytes(pixels[0])], SHAPE).form == "files"
    tensor = parse_input(np.zeros((2, *SHAPE)), SHAPE)
    assert tensor.form == "images" and tensor.tensor is not None and tensor.tensor.dtype == np.float32
    assert parse_input(np.zeros((2, 3 * 16 * 16), np.float32), SHAPE).tensor.shape == (2, *SHAPE)  # type: ignore[union-attr]
    assert parse_input({"images": np.zeros(SHAPE, np.float32)}, SHAPE).tensor.shape == (1, *SHAPE)  # type: ignore[union-attr]
    files = parse_input([f"data:image/png;base64,{b64(png_bytes(pixels[0]))}"], SHAPE)
    assert files.sources[0].data == png_bytes(pixels[0])


@pytest.mark.parametrize(
    ("payload", "match"),
    [
        ({"files": ["@@@ not base64"]}, r"files\[0\]: not valid base64 .*base64 -w0 image\.png"),
        ({"files": [7]}, r"files: must be a column of base64 strings or bytes, got int64 \[1\]"),
        ({"files": ["aGk=", 7]}, r"files\[1\]: must be a base64 string or bytes of an image file, got int"),
        ({"pixels": np.full((1, 4, 4), 0.5)}, r"pixels: pixels must be uint8 \(0-255\), got float64"),
        (
            np.full((1, 4, 4), 300, np.int64),
            r"pixels: pixels must be uint8 \(0-255\), got int64 values from 300 to 300",
        ),
        (
            np.zeros((1, 4, 4, 7), np.uint8),
            r"pixels: pixels must be \[N, height, width\] or \[N, height, width, channels",
        ),
        (np.zeros((2, 4), np.bool_), r"input: dtype bool is not an accepted input"),
        (
            np.zeros((2, 3, 8, 8), np.float32),
            r"images: the preprocessed tensor must be float32 \[N, 3, 16, 16\], got shape",
        ),
        ({"image": [1]}, r"input names \['image'\]: send exactly one of files, pixels, images"),
        ([[1, 2], [3]], r"not a rectangular array"),
    ],
)
def test_malformed_forms_name_the_rule(payload: Any, match: str) -> None:
    with pytest.raises(DataError, match=match):
        parse_input(payload, SHAPE)


# -- through mlflow.pyfunc.load_model and the bundle's engine ------------------------------------------------------
def test_files_pixels_and_tensor_answer_like_lepton_tune_predict(model: Any, study: TinyStudy, tmp_path: Path) -> None:
    import pandas as pd

    from lepton_tune.bundle import open_bundle
    from lepton_tune.data import iter_preprocessed

    pixels, truth = digits_pixels(12)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(tmp_path / f"{i}.png")
        paths[-1].write_bytes(png_bytes(image, "RGB" if i % 2 else None))  # grey and RGB files
    # what `lepton-tune predict` runs on these files: the manifest's preprocessing, then the engine
    tensor = np.concatenate([x.numpy() for _, x in iter_preprocessed(paths, open_bundle(study.bundle).preprocessing)])
    want = model.predict({"images": tensor}, params={"return_logits": True})
    assert list(want.columns) == ["label", "probability", "logits"] and len(want) == 12
    assert (want.label.astype(int).to_numpy() == truth).mean() >= 0.5  # a 2-epoch model; it is well above chance
    answers = {
        "base64": model.predict({"files": [b64(p.read_bytes()) for p in paths]}),
        "bytes column": model.predict(pd.DataFrame({"files": [p.read_bytes() for p in paths]})),
        "unnamed base64": model.predict(np.array([b64(p.read_bytes()) for p in paths])),
        "pixels": model.predict({"pixels": pixels}),
        "RGB pixels": model.predict(np.repeat(pixels[..., None], 3, axis=3)),
        "JSON int pixels": model.predict(pixels.astype(np.int64).tolist()),
    }
    for form, got in answers.items():
        assert list(got.columns) == ["label", "probability"], form
        assert list(got.label) == list(want.label), form
        assert np.allclose(got.probability, want.probability, atol=1e-4), form
    assert all(isinstance(label, str) for label in want.label)  # class names from the manifest
    logits = np.stack(want.logits.to_numpy())
    assert np.array_equal(logits.argmax(1).astype(str), want.label.to_numpy().astype(str))


def test_bad_input_is_invalid_parameter_with_the_decoders_text_and_the_model_keeps_serving(
    model: Any, tmp_path: Path
) -> None:
    from mlflow.exceptions import MlflowException

    from lepton_tune.data import MAX_IMAGE_PIXELS
    from lepton_tune.data._images import decode_image

    bomb = tmp_path / "bomb.png"
    Image.new("L", (7_000, 7_000)).save(bomb, optimize=True)  # 49 Mpixel, ~50 KiB: over our limit
    with pytest.raises(DataError) as on_file:
        decode_image(bomb, 3)  # what the CLI prints for the file (exit 2)
    with pytest.raises(MlflowException) as served:
        model.predict({"files": [b64(bomb.read_bytes())]})
    assert served.value.error_code == "INVALID_PARAMETER_VALUE"
    assert served.value.message == str(on_file.value).replace(str(bomb), "files[0]")
    assert f"7000x7000 pixels, over the limit of {MAX_IMAGE_PIXELS:,} pixels" in served.value.message
    cut = png_bytes(digits_pixels(1)[0][0])
    for payload, match in [
        ({"files": [b64(cut[: len(cut) // 2])]}, r"files\[0\]: cannot be read as an image"),
        ({"pixels": np.zeros((1, 7_000, 7_000), np.uint8)}, r"pixels\[0\]: 7000x7000 pixels"),
        ({"files": ["not base64!"]}, r"not valid base64"),
        ({"pixels": np.ones((1, 8, 8))}, r"got float64"),
    ]:
        with pytest.raises(MlflowException, match=match) as exc:
            model.predict(payload)
        assert exc.value.error_code == "INVALID_PARAMETER_VALUE"
    with pytest.raises(MlflowException, match=r"return_logits.*Can not safely convert"):
        model.predict({"pixels": digits_pixels(1)[0]}, params={"return_logits": "yes"})
    assert len(model.predict({"pixels": digits_pixels(3)[0]})) == 3  # still serving
    assert len(model.predict({"files": []})) == 0
