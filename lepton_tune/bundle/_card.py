"""The bundle's README.md: a short model card in plain words."""

from __future__ import annotations

from typing import Any

__all__ = ["model_card"]

_UNITS = {"accuracy": "", "latency_p50_ms": " ms", "latency_p95_ms": " ms", "latency_p99_ms": " ms",
          "throughput": " images/s", "memory_mb": " MiB", "cost_per_million": " USD per million images",
          "device_memory_mb": " MiB"}


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


_NAMES = {"accuracy": "accuracy (top-1)", "latency_p50_ms": "latency, median", "latency_p95_ms": "latency, 95th percentile",
          "latency_p99_ms": "latency, 99th percentile", "throughput": "throughput", "memory_mb": "memory (all processes, PSS)",
          "cost_per_million": "cost", "device_memory_mb": "GPU memory"}


def _numbers(values: Any) -> str:
    return ", ".join(f"{float(v):.4f}" for v in values)


def model_card(manifest: dict[str, Any], name: str = "BUNDLE_DIR") -> str:
    """Render the model card of a bundle from its manifest (``name``: the bundle directory, for the examples)."""
    m, e, s, meas = manifest["model"], manifest["engine"], manifest["study"], manifest["measured"]
    host = manifest.get("host", {})
    classes = manifest.get("classes", [])
    c, h, w = m["image_shape"]
    metrics = "\n".join(f"| {_NAMES.get(k, k)} | {_value(k, v)} |" for k, v in meas["metrics"].items())
    pre = manifest["preprocessing"]
    proto = meas.get("protocol", {})
    return f"""# {s['name']} trial {s['trial']}: {m['backbone']} ({m['precision']}, {e['shards']} shard(s))

A lepton-tune production bundle: an image classifier and the serving layout it was measured with.

## What it does
Classifies {c}-channel {h}x{w} images into {len(classes)} classes ({', '.join(map(str, classes[:20]))}{' ...' if len(classes) > 20 else ''}).
Input files are preprocessed exactly as the study's dataset ({manifest['dataset']['kind']}): resized to {h}x{w},
normalised per channel with mean ({_numbers(pre['mean'])}) and std ({_numbers(pre['std'])}){
'; light-background images are inverted first (dark ink on white becomes bright ink on black)' if pre.get('invert') == 'auto' else ''}.

## How it is served
Model `{m['backbone']}` trained with recipe `{m['recipe_hash']}` ({m['recipe']['epochs']} epochs, {m['recipe']['optimizer']}),
converted to {m['precision']}, run by the `{m['runtime']}` runtime on `{m['device']}`.
The lepton-tune engine runs {e['shards']} {e['mode']} shard(s) x {e['threads_per_shard']} thread(s),
batch size {e['batch_size']} (waiting up to {e['max_wait_ms']} ms to fill a batch), {e['pool_slots']} slots,
core pinning {'on' if e['pin'] else 'off'}, shards as {_isolation(e)}.

## How it measured
On the study's host ({host.get('cpu_model', '?')}, {host.get('cores', '?')} usable cores, {host.get('memory_gib', '?')} GiB,
device {host.get('device', '?')}, torch {host.get('torch', '?')}), {proto.get('loop', 'closed')} loop with
{proto.get('concurrency', '?')} request(s) in flight, {proto.get('repeats', '?')} window(s) of {proto.get('requests', '?')} requests
after {proto.get('warmup', '?')} warm-up requests (medians over windows); accuracy is top-1 on
{meas.get('accuracy_samples', '?')} held-out test images through the engine.

| metric | value |
|---|---|
{metrics}

Chosen: {s.get('selection') or 'by trial number'}.

## Use it
```bash
lepton-tune predict {name} image.png --json     # classify files
lepton-tune verify {name}                       # re-measure here; exit 3 if it drifted, 4 if the host was busy
mlflow models serve -m {name} --env-manager local --host 127.0.0.1 --port 5001   # local: see below
curl -s 127.0.0.1:5001/invocations -H 'Content-Type: application/json' -d '{{"inputs": IMAGES}}'
```
Serve it with `--env-manager local` from an environment where lepton-tune is installed: MLflow's default env
manager stops at once (`./STOP--this-lepton-tune-bundle-is-served-with--env-manager-local`), because a fresh
environment built from the public index cannot hold the lepton-tune that exported this bundle.
Over MLflow (`mlflow.pyfunc.load_model`, `mlflow models serve`) the model takes preprocessed float32 images
`[N, {c}, {h}, {w}]` and returns one row of {len(classes)} logits per image (class order as above); `lepton-tune predict`
does the preprocessing and returns class names with probabilities.
```python
import lepton_tune
with lepton_tune.load_bundle("{name}") as engine:    # a started engine
    logits = engine.predict(images)                    # float32 [N, {c}, {h}, {w}] -> [N, {len(classes)}]
```

## Limits
The numbers hold for the host above under that protocol; on another machine run `lepton-tune verify`.
The served files (weights or ONNX graph) are checked against their SHA-256 in `lepton.yaml` before every load;
an edited file is refused.
"""
