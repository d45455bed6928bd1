"""The one image decoder and its limits, on real files: bombs, huge, truncated, not images, FIFOs and
devices are one DataError naming the file (exit 2 in the CLI); 16-bit, palette, alpha and EXIF
orientation decode to what a viewer shows; directories stream in bounded chunks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from lepton_tune.data._images import MAX_IMAGE_BYTES, MAX_IMAGE_PIXELS, decode_image, iter_preprocessed
from lepton_tune.exceptions import DataError


def test_decompression_bomb_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "bomb.png"
    Image.new("L", (10_000, 10_000)).save(path, optimize=True)  # 100 Mpixel of zeros: ~100 KiB on disk
    assert path.stat().st_size < 1 << 20
    with pytest.raises(DataError, match=rf"bomb\.png: .*{MAX_IMAGE_PIXELS:,} pixels.*decompression bomb"):
        decode_image(path, 3)
    path = tmp_path / "big.png"
    Image.new("L", (7_000, 7_000)).save(path, optimize=True)  # 49 Mpixel: under Pillow's own limit, over ours
    with pytest.raises(DataError, match=rf"big\.png: 7000x7000 pixels, over the limit of {MAX_IMAGE_PIXELS:,} pixels"):
        decode_image(path, 3)


def test_huge_file_is_refused_by_size(tmp_path: Path) -> None:
    path = tmp_path / "huge.png"
    with path.open("wb") as fh:
        fh.truncate(MAX_IMAGE_BYTES + 1)
    with pytest.raises(DataError, match=r"huge\.png: 64\.0 MiB, over the 64 MiB limit for one image file"):
        decode_image(path, 3)


def test_truncated_and_non_images(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(good)
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[: good.stat().st_size // 2])
    with pytest.raises(DataError, match=r"cut\.png: cannot be read as an image .*Replace or remove the file"):
        decode_image(tmp_path / "cut.png", 3)
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(DataError, match=r"notes\.png: cannot be read as an image \(UnidentifiedImageError"):
        decode_image(tmp_path / "notes.png", 3)


def test_fifo_and_device_are_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match=r"pipe\.png: is a FIFO, not a regular image file"):
        decode_image(fifo, 3)
    with pytest.raises(DataError, match=r"/dev/zero: is a device, not a regular image file"):
        decode_image("/dev/zero", 3)


def test_sixteen_bit_greyscale_is_scaled_not_clipped(tmp_path: Path) -> None:
    path = tmp_path / "deep.png"
    Image.fromarray(np.full((8, 8), 32768, dtype=np.uint16)).save(path)
    assert Image.open(path).mode.startswith("I")
    x = decode_image(path, 3)
    assert x.shape == (3, 8, 8) and float(x.mean()) == pytest.approx(32768 / 65535, abs=1e-4)  # was 1.0 (clipped)
    assert float(decode_image(path, 1).mean()) == pytest.approx(0.5, abs=1e-3)


def test_alpha_is_composited_on_white_and_palette_expanded(tmp_path: Path) -> None:
    clear = tmp_path / "clear.png"
    Image.new("RGBA", (4, 4), (0, 0, 0, 0)).save(clear)  # fully transparent black: a viewer shows white
    assert float(decode_image(clear, 3).min()) == 1.0
    half = tmp_path / "half.png"
    Image.new("LA", (4, 4), (0, 128)).save(half)
    assert float(decode_image(half, 1).mean()) == pytest.approx(127 / 255, abs=0.01)
    pal = tmp_path / "pal.png"
    img = Image.new("P", (4, 4), 1)
    img.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    img.info["transparency"] = 0
    img.save(pal, transparency=0)
    x = decode_image(pal, 3)
    assert x[:, 0, 0].tolist() == [1.0, 0.0, 0.0]


def test_exif_orientation_is_honoured(tmp_path: Path) -> None:
    path = tmp_path / "rotated.jpg"
    arr = np.zeros((20, 40, 3), dtype=np.uint8)
    arr[:, :20] = 255  # left half white, stored 40 wide x 20 high
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display"
    Image.fromarray(arr).save(path, exif=exif, quality=95)
    x = decode_image(path, 1)
    assert x.shape == (1, 40, 20)  # displayed upright: 20 wide x 40 high
    assert float(x[0, :20].mean()) > 0.9 and float(x[0, 20:].mean()) < 0.1


def test_directories_stream_in_bounded_chunks(tmp_path: Path) -> None:
    for i in range(600):
        Image.new("L", (8, 8), i % 256).save(tmp_path / f"{i:04d}.png")
    paths = sorted(tmp_path.iterdir())
    settings = {"channels": 1, "image_size": 8, "mean": [0.0], "std": [1.0], "invert": False}
    sizes = [len(images) for _, images in iter_preprocessed(paths, settings, chunk=256)]
    assert sizes == [256, 256, 88]


def test_bad_image_is_a_data_error_in_a_fresh_process(tmp_path: Path) -> None:
    (tmp_path / "x.png").write_text("not an image")
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            "from lepton_tune.data import load_image_files; import sys; "
            "load_image_files([sys.argv[1]], {'channels': 3, 'image_size': 8, 'mean': [0,0,0], "
            "'std': [1,1,1], 'invert': False})",
            str(tmp_path / "x.png"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode != 0 and "DataError" in proc.stderr and "x.png: cannot be read as an image" in proc.stderr


def test_in_memory_images_decode_like_files_with_the_same_limits(tmp_path: Path) -> None:
    """Bytes received over HTTP and uint8 pixels go through the file decoder: same limits, same text, same pixels."""
    import torch

    from lepton_tune.data import EncodedImage, PixelArray

    with pytest.raises(DataError, match=r"upload 0: 64\.0 MiB, over the 64 MiB limit for one image file"):
        decode_image(EncodedImage(b"\0" * (MAX_IMAGE_BYTES + 1), "upload 0"), 3)
    rgba = np.random.default_rng(0).integers(0, 255, (5, 7, 4), dtype=np.uint8)
    path = tmp_path / "a.png"
    Image.fromarray(rgba).save(path)
    want = decode_image(path, 3)
    assert torch.equal(decode_image(EncodedImage(path.read_bytes(), "upload"), 3), want)
    assert torch.equal(decode_image(PixelArray(rgba, "pixels[0]"), 3), want)  # alpha composited on white alike
    with pytest.raises(DataError, match=r"pixels\[0\]: pixels must be uint8 \(0-255\), got float32"):
        decode_image(PixelArray(rgba.astype(np.float32), "pixels[0]"), 3)
    with pytest.raises(DataError, match=r"pixels\[0\]: pixels must be \[height, width\] or \[height, width, channels"):
        decode_image(PixelArray(np.zeros((4, 4, 2), np.uint8), "pixels[0]"), 3)
    with pytest.raises(DataError, match=rf"upload: 7000x7000 pixels, over the limit of {MAX_IMAGE_PIXELS:,} pixels"):
        decode_image(PixelArray(np.zeros((7000, 7000), np.uint8), "upload"), 3)
