"""The bundle's README.md: a short model card in plain words."""

from __future__ import annotations

from typing import Any

__all__ = ["input_examples", "model_card"]

_URL = "127.0.0.1:5001/invocations"
_POST = f"curl -s {_URL} -H 'Content-Type: application/json' -d @-"


def input_examples(manifest: dict[str, Any]) -> list[tuple[str, str, str]]:
    """``(form, what it holds, a copy-paste shell example)`` for each input form the served model takes."""
    c, h, w = (int(v) for v in manifest["model"]["image_shape"])
    return [
        (
            "files",
            "encoded image files (PNG, JPEG, WebP, ... any size and mode) as base64 strings",
            f'printf \'{{"inputs": {{"files": ["%s"]}}}}\' "$(base64 -w0 image.png)" | {_POST}',
        ),
        (
            "pixels",
            "uint8 pixels [N, H, W] (grey) or [N, H, W, C] (C = 1, 3 or 4), any size",
            (
                f"curl -s {_URL} -H 'Content-Type: application/json' "
                '-d \'{"inputs": {"pixels": [[[0, 255, 0], [255, 0, 255], [0, 255, 0]]]}}\''
            ),
        ),
        (
            "images",
            f"the preprocessed float32 tensor [N, {c}, {h}, {w}] (no preprocessing here)",
            (
                'python -c \'import json; print(json.dumps({"inputs": {"images": '
                f'[[[[0.0] * {w}] * {h}] * {c}]}}, "params": {{"return_logits": True}}}}))\' | {_POST}'
            ),
        ),
    ]


_UNITS = {
    "accuracy": "",
    "latency_p50_ms": " ms",
    "latency_p95_ms": " ms",
    "latency_p99_ms": " ms",
    "throughput": " images/s",
    "memory_mb": " MiB",
    "cost_per_million": " USD per million images",
    "device_memory_mb": " MiB",
}


def _isolation(engine: dict[str, Any]) -> str:
    if engine.get("isolation", "process") == "thread":
        return "threads of the serving process (no crash isolation)"
    return "worker processes"


def _value(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if name == "accuracy":
        return f"{value:.2%}"
    return f"{value:.4g}{_UNITS.get(name, '')}"


_NAMES = {
    "accuracy": "accuracy (top-1)",
    "latency_p50_ms": "latency, median",
    "latency_p95_ms": "latency, 95th percentile",
    "latency_p99_ms": "latency, 99th percentile",
    "throughput": "throughput",
    "memory_mb": "memory (all processes, PSS)",
    "cost_per_million": "cost",
    "device_memory_mb": "GPU memory",
}


def _numbers(values: Any) -> str:
    return ", ".join(f"{float(v):.4f}" for v in values)


def _examples(manifest: dict[str, Any]) -> str:
    return "\n".join(
        f"- `{form}`: {holds}\n  ```bash\n  {example}\n  ```" for form, holds, example in input_examples(manifest)
    )


def model_card(manifest: dict[str, Any], name: str = "BUNDLE_DIR") -> str:
    """Render the model card of a bundle from its manifest (``name``: the bundle directory, for the examples)."""
    m, e, s = manifest["model"], manifest["engine"], manifest["study"]
    sections = (_what_it_does(manifest), _how_served(m, e), _how_measured(manifest), _use_it(manifest, name), _LIMITS)
    return f"# {s['name']} trial {s['trial']}: {m['backbone']} ({m['precision']}, {e['shards']} shard(s))\n\n" + (
        "A lepton-tune production bundle: an image classifier and the serving layout it was measured with.\n\n"
        + "\n".join(sections)
    )


_LIMITS = """## Limits
The numbers hold for the host above under that protocol; on another machine run `lepton-tune verify`.
The served files (weights or ONNX graph) are checked against their SHA-256 in `lepton.yaml` before every load;
an edited file is refused.
"""


def _what_it_does(manifest: dict[str, Any]) -> str:
    classes = manifest.get("classes", [])
    c, h, w = manifest["model"]["image_shape"]
    pre = manifest["preprocessing"]
    invert = (
        "; light-background images are inverted first (dark ink on white becomes bright ink on black)"
        if pre.get("invert") == "auto"
        else ""
    )
    return f"""## What it does
Classifies {c}-channel {h}x{w} images into {len(classes)} classes ({", ".join(map(str, classes[:20]))}{" ..." if len(classes) > 20 else ""}).
Input files are preprocessed exactly as the study's dataset ({manifest["dataset"]["kind"]}): resized to {h}x{w},
normalised per channel with mean ({_numbers(pre["mean"])}) and std ({_numbers(pre["std"])}){invert}.
"""


def _how_served(m: dict[str, Any], e: dict[str, Any]) -> str:
    return f"""## How it is served
Model `{m["backbone"]}` trained with recipe `{m["recipe_hash"]}` ({m["recipe"]["epochs"]} epochs, {m["recipe"]["optimizer"]}),
converted to {m["precision"]}, run by the `{m["runtime"]}` runtime on `{m["device"]}`.
The lepton-tune engine runs {e["shards"]} {e["mode"]} shard(s) x {e["threads_per_shard"]} thread(s),
batch size {e["batch_size"]} (waiting up to {e["max_wait_ms"]} ms to fill a batch), {e["pool_slots"]} slots,
core pinning {"on" if e["pin"] else "off"}, shards as {_isolation(e)}.
"""


def _how_measured(manifest: dict[str, Any]) -> str:
    meas, host = manifest["measured"], manifest.get("host", {})
    proto = meas.get("protocol", {})
    metrics = "\n".join(f"| {_NAMES.get(k, k)} | {_value(k, v)} |" for k, v in meas["metrics"].items())
    return f"""## How it measured
On the study's host ({host.get("cpu_model", "?")}, {host.get("cores", "?")} usable cores, {host.get("memory_gib", "?")} GiB,
device {host.get("device", "?")}, torch {host.get("torch", "?")}), {proto.get("loop", "closed")} loop with
{proto.get("concurrency", "?")} request(s) in flight, {proto.get("repeats", "?")} window(s) of {proto.get("requests", "?")} requests
after {proto.get("warmup", "?")} warm-up requests (medians over windows); accuracy is top-1 on
{meas.get("accuracy_samples", "?")} held-out test images through the engine.

| metric | value |
|---|---|
{metrics}

Chosen: {manifest["study"].get("selection") or "by trial number"}.
"""


def _use_it(manifest: dict[str, Any], name: str) -> str:
    e, classes = manifest["engine"], manifest.get("classes", [])
    c, h, w = manifest["model"]["image_shape"]
    return f"""## Use it
```bash
lepton-tune predict {name} image.png --json     # classify files
lepton-tune verify {name}                       # re-measure here; exit 3 if it drifted, 4 if the host was busy
mlflow models serve -m {name} --env-manager local --host 127.0.0.1 --port 5001   # local: see below
printf '{{"inputs": {{"files": ["%s"]}}}}' "$(base64 -w0 image.png)" | curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d @-
```
Serve it with `--env-manager local` from an environment where lepton-tune is installed: MLflow's default env
manager stops at once (`./STOP--this-lepton-tune-bundle-is-served-with--env-manager-local`), because a fresh
environment built from the public index cannot hold the lepton-tune that exported this bundle.

Over MLflow (`mlflow models serve`, `mlflow.pyfunc.load_model`) the model takes any one of these inputs and
preprocesses files and pixels exactly as `lepton-tune predict` does (same limits; a breach is HTTP 400 with the
same message). It answers one row per image, `{{"label": ..., "probability": ...}}`, plus `"logits"` (class order
as above) with `"params": {{"return_logits": true}}`:

{_examples(manifest)}

Serve with one worker (`--workers 1`, the default): the engine already runs {e["shards"]} shard(s) on the cores it
was measured on, and concurrent requests share its batcher. An extra worker on this host starts no engine: it
warns and waits as a standby, taking over if the serving worker exits.

In Python, without MLflow (preprocessed tensors in, logits out):
```python
import lepton_tune
with lepton_tune.load_bundle("{name}") as engine:    # a started engine
    logits = engine.predict(images)                    # float32 [N, {c}, {h}, {w}] -> [N, {len(classes)}]
```
"""
