"""``mlflow models serve`` on a bundle, over real HTTP on 127.0.0.1: PNG files (base64), uint8 pixels and the tensor
get the labels ``lepton-tune predict`` gives; malformed payloads get HTTP 400 with the decoder's message and the
server keeps serving; with two workers only one engine runs (the other is a standby that takes over)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from lepton_tune.bundle import manifest_digest
from tests.bundle_tests._study import TinyStudy
from tests.bundle_tests.test_pyfunc_inputs import b64, digits_pixels, png_bytes

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def post(url: str, payload: dict[str, Any], timeout: float = 60) -> tuple[int, Any]:
    """POST JSON; return (status, parsed body or text)."""
    req = urllib.request.Request(url, data=json.dumps(payload).encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return int(resp.status), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        body = err.read().decode(errors="replace")
        try:
            return int(err.code), json.loads(body)
        except json.JSONDecodeError:
            return int(err.code), body


def ping(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return 0


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path
    lock: Path
    bundle: Path


@pytest.fixture(scope="module")
def server(study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """``mlflow models serve --workers 2 --env-manager local`` on 127.0.0.1, a free port; its own TMPDIR (the lock)."""
    tmp = tmp_path_factory.mktemp("serve")
    port = free_port()
    bin_dir = Path(sys.executable).parent
    env = {**study.env, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "TMPDIR": str(tmp)}
    log_path = tmp / "serve.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen(
            [
                str(bin_dir / "mlflow"),
                "models",
                "serve",
                "-m",
                str(study.bundle),
                "--env-manager",
                "local",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                "2",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=tmp,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while ping(f"{url}/ping") != 200:
            assert proc.poll() is None, log_path.read_text()[-3000:]
            assert time.monotonic() < deadline, "mlflow models serve did not answer /ping within 180 s"
            time.sleep(1)
        lock = tmp / f"lepton-tune-serving-{os.getuid()}" / f"{manifest_digest(study.bundle)[:32]}.lock"
        yield Server(url=f"{url}/invocations", proc=proc, log=log_path, lock=lock, bundle=study.bundle)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)


@pytest.fixture(scope="module")
def files(study: TinyStudy, tmp_path_factory: pytest.TempPathFactory) -> tuple[list[Path], np.ndarray, list[str]]:
    """12 digit PNGs, their pixels, and the labels ``lepton-tune predict --json`` gives them (a fresh process)."""
    root = tmp_path_factory.mktemp("pngs")
    pixels, _ = digits_pixels(12)
    paths = []
    for i, image in enumerate(pixels):
        paths.append(root / f"{i:02d}.png")
        paths[-1].write_bytes(png_bytes(image))
    proc = subprocess.run(
        [sys.executable, "-m", "lepton_tune", "predict", str(study.bundle), *map(str, paths), "--json"],
        capture_output=True,
        text=True,
        timeout=300,
        env=study.env,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return paths, pixels, [row["label"] for row in json.loads(proc.stdout)]


def test_png_files_and_pixels_get_the_labels_of_lepton_tune_predict(server: Server, files: Any) -> None:
    paths, pixels, want = files
    _, truth = digits_pixels(12)
    assert sum(label == str(t) for label, t in zip(want, truth)) >= 6  # the 2-epoch model is well above chance
    status, body = post(server.url, {"inputs": {"files": [b64(p.read_bytes()) for p in paths]}})
    assert status == 200, body
    assert [row["label"] for row in body["predictions"]] == want
    assert all(set(row) == {"label", "probability"} and 0 < row["probability"] <= 1 for row in body["predictions"])
    status, body = post(server.url, {"inputs": {"pixels": pixels.tolist()}, "params": {"return_logits": True}})
    assert status == 200, body
    assert [row["label"] for row in body["predictions"]] == want
    logits = np.asarray([row["logits"] for row in body["predictions"]])
    assert logits.shape == (12, 10) and [str(i) for i in logits.argmax(1)] == want
    from lepton_tune.bundle import read_manifest
    from lepton_tune.data import iter_preprocessed

    tensor = np.concatenate(
        [x.numpy() for _, x in iter_preprocessed(paths, read_manifest(server.bundle)["preprocessing"])]
    )
    status, body = post(server.url, {"inputs": {"images": tensor.tolist()}})  # the preprocessed tensor, as before
    assert status == 200 and [row["label"] for row in body["predictions"]] == want, body
    status, body = post(server.url, {"dataframe_split": {"columns": ["files"], "data": [[b64(paths[0].read_bytes())]]}})
    assert status == 200 and body["predictions"][0]["label"] == want[0], body


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"inputs": {"files": ["this is not base64!"]}}, "files[0]: not valid base64"),
        ({"inputs": {"pixels": [[[0.5, 0.25], [1.0, 0.0]]]}}, "pixels: pixels must be uint8 (0-255), got float64"),
        (
            {"inputs": {"pixels": [[[0, 300], [255, -1]]]}},
            "pixels: pixels must be uint8 (0-255), got int64 values from -1",
        ),
        ({"inputs": {"images": [[[0.0, 1.0]]]}}, "images: the preprocessed tensor must be float32 [N, 3, 16, 16]"),
        ({"inputs": {"picture": ["x"]}}, "input names ['picture']: send exactly one of files, pixels, images"),
        ("bomb", "7000x7000 pixels, over the limit of 40,000,000 pixels per image"),
    ],
)
def test_malformed_payload_is_http_400_with_the_message_and_the_server_keeps_serving(
    server: Server, files: Any, payload: Any, message: str, tmp_path: Path
) -> None:
    if payload == "bomb":  # 49 Mpixel of zeros: a ~50 KiB PNG that would decode to 49 MB per channel
        bomb = tmp_path / "bomb.png"
        Image.new("L", (7_000, 7_000)).save(bomb, optimize=True)
        payload = {"inputs": {"files": [b64(bomb.read_bytes())]}}
    status, body = post(server.url, payload)
    assert status == 400, body
    assert isinstance(body, dict) and body["error_code"] == "INVALID_PARAMETER_VALUE", body
    assert message in body["message"], body["message"][-2000:]
    paths, _, want = files
    status, body = post(server.url, {"inputs": {"files": [b64(paths[1].read_bytes())]}})
    assert status == 200 and body["predictions"][0]["label"] == want[1], body


def test_concurrent_requests_share_one_engine_and_a_second_worker_is_a_standby(server: Server, files: Any) -> None:
    paths, pixels, want = files
    with ThreadPoolExecutor(8) as pool:  # concurrent requests: the engine's batcher serves them all
        answers = list(
            pool.map(lambda i: post(server.url, {"inputs": {"pixels": pixels[i : i + 1].tolist()}}), range(12))
        )
    assert [status for status, _ in answers] == [200] * 12
    assert [body["predictions"][0]["label"] for _, body in answers] == want
    log = server.log.read_text()
    assert log.count("waits as a standby") == 1, log[-3000:]  # two workers, one engine
    owner = int(server.lock.read_text())
    assert f"another worker (pid {owner}) already serves this bundle" in log
    os.kill(owner, signal.SIGKILL)  # the serving worker dies: the standby takes the lock and starts an engine
    deadline = time.monotonic() + 120
    while True:
        status, body = (
            post(server.url, {"inputs": {"files": [b64(paths[2].read_bytes())]}}, timeout=30)
            if ping(server.url.replace("invocations", "ping")) == 200
            else (0, None)
        )
        if status == 200:
            break
        assert time.monotonic() < deadline, server.log.read_text()[-3000:]
        time.sleep(1)
    assert body["predictions"][0]["label"] == want[2]
    assert int(server.lock.read_text()) != owner
