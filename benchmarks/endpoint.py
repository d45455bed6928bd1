"""What the HTTP layer costs: a bundle through ``mlflow models serve`` vs its engine called in process.

For one exported bundle, measured side by side in one run on this machine, with the same images
(digits test images, one image per request, closed loop with ``--clients`` requests in flight):

- **in-process engine**: ``lepton_tune.load_bundle(DIR).predict(x)`` on the preprocessed tensor, in
  this process (no HTTP, no JSON, no preprocessing): the floor every served form is compared to.
- **HTTP tensor**: ``{"inputs": {"images": [...]}}`` (the client preprocessed the image).
- **HTTP PNG**: ``{"inputs": {"files": ["<base64 PNG>"]}}`` (decoded and preprocessed by the server).
- **HTTP uint8**: ``{"inputs": {"pixels": [[...]]}}`` (preprocessed by the server).

The server is ``mlflow models serve --env-manager local --workers 1`` on 127.0.0.1; each client
thread keeps one HTTP/1.1 connection open (as a client library does) and sends pre-encoded
bodies, so the client's JSON encoding is not timed. Sides run interleaved in ``--rounds`` rounds
of equal windows (warm-up first); requests/s and p95 are medians over rounds with a 95% bootstrap
interval (``benchmarks/_stats.py``); the ratio to the in-process engine is per round.

Usage: ``python benchmarks/endpoint.py [--quick] [--bundle DIR] [--clients 1,4] [--rounds N] [--seconds S]``
(without ``--bundle`` a tiny digits study is searched and exported first, about 40 s).
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np

from benchmarks._stats import bootstrap_median

STUDY = """
name: endpoint
dataset: {kind: digits, image_size: 32, channels: 3, split_seed: 0}
train: {epochs: 3, batch_size: 64, seed: 0}
search_space:
  params: {backbone: small_cnn, precision: fp32, shards: 1, threads_per_shard: 2, batch_size: 8, max_wait_ms: 1}
objectives: [accuracy, latency_p95_ms]
sampler: {name: random, seed: 0}
n_trials: 1
baseline: false
protocol: {warmup: 5, requests: 50, repeats: 2, concurrency: 4, accuracy_samples: 200, noise_threshold: 4.0}
"""


def make_bundle(work: Path) -> Path:
    """Search and export the tiny study above; the bundle every side serves."""
    (work / "study.yaml").write_text(STUDY)
    env = {**os.environ, "LEPTON_TUNE_CACHE": str(work / "cache"), "MLFLOW_DISABLE_TELEMETRY": "true"}
    for args in (
        ["search", "study.yaml", "--run-dir", "runs", "--quiet", "--no-confirm"],
        ["export", "--run-dir", "runs", "--trial", "0", "--out", "bundle"],
    ):
        proc = subprocess.run(
            [sys.executable, "-m", "lepton_tune", *args],
            cwd=work,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        if proc.returncode != 0:
            sys.exit(f"lepton-tune {args[0]} failed:\n{proc.stderr[-3000:]}")
    return work / "bundle"


def payloads(bundle: Path, n: int) -> tuple[np.ndarray, dict[str, list[bytes]]]:
    """``n`` digits test images: the preprocessed tensor, and one pre-encoded JSON body per image per form."""
    from PIL import Image
    from sklearn.datasets import load_digits

    from lepton_tune.bundle import read_manifest
    from lepton_tune.data import EncodedImage, iter_preprocessed

    digits = load_digits()
    pixels = [
        np.asarray(Image.fromarray((im / 16 * 255).astype(np.uint8)).resize((32, 32), Image.BILINEAR))
        for im in digits.images[-n:]
    ]
    pngs = []
    for p in pixels:
        buf = io.BytesIO()
        Image.fromarray(p).save(buf, format="PNG")
        pngs.append(buf.getvalue())
    pre = read_manifest(bundle)["preprocessing"]
    tensor = np.concatenate(
        [x.numpy() for _, x in iter_preprocessed([EncodedImage(b, f"image {i}") for i, b in enumerate(pngs)], pre)]
    )
    bodies = {
        "HTTP tensor": [json.dumps({"inputs": {"images": t[None].tolist()}}).encode() for t in tensor],
        "HTTP PNG": [json.dumps({"inputs": {"files": [base64.b64encode(b).decode()]}}).encode() for b in pngs],
        "HTTP uint8": [json.dumps({"inputs": {"pixels": p[None].tolist()}}).encode() for p in pixels],
    }
    return np.ascontiguousarray(tensor), bodies


def start_server(bundle: Path, work: Path) -> tuple[subprocess.Popen[bytes], int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    bin_dir = Path(sys.executable).parent
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "PYTHONPATH": str(Path(__file__).resolve().parent.parent),
    }
    log = (work / "serve.log").open("w")
    proc = subprocess.Popen(
        [
            str(bin_dir / "mlflow"),
            "models",
            "serve",
            "-m",
            str(bundle),
            "--env-manager",
            "local",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    deadline = time.monotonic() + 180
    while True:
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/ping")
            if conn.getresponse().status == 200:
                return proc, port
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            sys.exit(f"mlflow models serve did not start:\n{(work / 'serve.log').read_text()[-3000:]}")
        time.sleep(1)


def http_sender(port: int, bodies: list[bytes]) -> Callable[[int, Any], None]:
    """One request per call on the calling thread's own kept-alive connection; checks the answer."""
    local = threading.local()

    def send(i: int, _: Any) -> None:
        if getattr(local, "conn", None) is None:
            local.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        local.conn.request(
            "POST", "/invocations", body=bodies[i % len(bodies)], headers={"Content-Type": "application/json"}
        )
        resp = local.conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"HTTP {resp.status}: {body[:300]!r}")

    return send


def engine_send(engine: Any, tensor: np.ndarray, i: int) -> None:
    """One request to the engine in this process: the preprocessed image, as the HTTP tensor side sends it."""
    engine.predict(tensor[i % len(tensor)][None])


def window(send: Callable[[int, Any], None], clients: int, seconds: float) -> tuple[float, float]:
    """Closed loop: ``clients`` threads each send one request after another for ``seconds``; (req/s, p95 ms)."""
    latencies: list[list[float]] = [[] for _ in range(clients)]
    stop = time.perf_counter() + seconds

    errors: list[BaseException] = []

    def client(k: int) -> None:
        i = k
        try:
            while time.perf_counter() < stop:
                t = time.perf_counter()
                send(i, None)
                latencies[k].append((time.perf_counter() - t) * 1000)
                i += clients
        except BaseException as exc:  # noqa: BLE001 - re-raised on the main thread below
            errors.append(exc)

    start = time.perf_counter()
    threads = [threading.Thread(target=client, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    flat = [x for lat in latencies for x in lat]
    return len(flat) / (time.perf_counter() - start), float(np.percentile(flat, 95))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="1 s windows, 3 rounds, 1 and 4 clients")
    ap.add_argument("--bundle", type=Path, help="serve this bundle (default: search and export a tiny digits study)")
    ap.add_argument("--clients", default="1,4", help="requests in flight, comma-separated (default 1,4)")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds (default 5; --quick 3)")
    ap.add_argument("--seconds", type=float, default=None, help="window length (default 3 s; --quick 1 s)")
    args = ap.parse_args()
    rounds = args.rounds or (3 if args.quick else 5)
    seconds = args.seconds or (1.0 if args.quick else 3.0)
    clients_list = [int(c) for c in args.clients.split(",")]
    import lepton_tune

    with tempfile.TemporaryDirectory(prefix="lepton-endpoint-") as tmp:
        work = Path(tmp)
        bundle = args.bundle or make_bundle(work)
        tensor, bodies = payloads(bundle, 64)
        proc, port = start_server(bundle, work)
        try:
            with lepton_tune.load_bundle(bundle) as engine:
                sides: dict[str, Callable[[int, Any], None]] = {
                    "in-process engine": lambda i, _: engine_send(engine, tensor, i),
                    **{name: http_sender(port, b) for name, b in bodies.items()},
                }
                report(sides, clients_list, rounds, seconds, bundle)
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def report(
    sides: dict[str, Callable[[int, Any], None]], clients_list: list[int], rounds: int, seconds: float, bundle: Path
) -> None:
    from lepton_tune.bundle import read_manifest

    m = read_manifest(bundle)
    e = m["engine"]
    print(
        f"bundle: {m['model']['backbone']} {m['model']['precision']} {m['model']['image_shape']}, engine "
        f"K={e['shards']} x {e['threads_per_shard']} thread(s), batch {e['batch_size']}; {os.cpu_count()} cores; "
        f"{rounds} interleaved rounds of {seconds:g} s windows; one image per request"
    )
    for clients in clients_list:
        for send in sides.values():  # warm-up: every side, every connection
            window(send, clients, min(1.0, seconds))
        rates: dict[str, list[float]] = {name: [] for name in sides}
        p95s: dict[str, list[float]] = {name: [] for name in sides}
        for _ in range(rounds):
            for name, send in sides.items():
                rate, p95 = window(send, clients, seconds)
                rates[name].append(rate)
                p95s[name].append(p95)
        print(f"\n{clients} request(s) in flight")
        print("| side | requests/s [95% CI] | p95 ms [95% CI] | req/s vs in-process [95% CI] |")
        print("|---|---|---|---|")
        base = rates["in-process engine"]
        for name in sides:
            r, p = bootstrap_median(rates[name]), bootstrap_median(p95s[name])
            q = bootstrap_median([a / b for a, b in zip(rates[name], base)])
            ratio = f"{q.median:.2f} [{q.low:.2f}, {q.high:.2f}]"
            print(
                f"| {name} | {r.median:.0f} [{r.low:.0f}, {r.high:.0f}] | {p.median:.2f} [{p.low:.2f}, {p.high:.2f}] "
                f"| {ratio} |"
            )
        http_sides = [n for n in sides if n.startswith("HTTP")]
        best = max(http_sides, key=lambda n: bootstrap_median(rates[n]).median)
        print(f"cheapest payload form at {clients} in flight: {best} (highest median requests/s)")


if __name__ == "__main__":
    main()
