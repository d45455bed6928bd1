"""The bundle's README.md: a short model card in plain words."""

from __future__ import annotations

from typing import Any

__all__ = ["model_card"]

_UNITS = {"accuracy": "", "latency_p50_ms": " ms", "latency_p95_ms": " ms", "latency_p99_ms": " ms",
          "throughput": " images/s", "memory_mb": " MiB", "cost_per_million": " USD per million images",
          "device_memory_mb": " MiB"}


def _value(name: str, value: Any) -> str:
    if not isinstance(value, (int, float)):
        return str(value)
    if name == "accuracy":
        return f"{value:.2%}"
    return f"{value:.4g}{_UNITS.get(name, '')}"


def model_card(manifest: dict[str, Any]) -> str:
    """Render the model card of a bundle from its manifest."""
    m, e, s, meas = manifest["model"], manifest["engine"], manifest["study"], manifest["measured"]
    host = manifest.get("host", {})
    classes = manifest.get("classes", [])
    c, h, w = m["image_shape"]
    metrics = "\n".join(f"| {k} | {_value(k, v)} |" for k, v in meas["metrics"].items())
    proto = meas.get("protocol", {})
    return f"""# {s['name']} trial {s['trial']}: {m['backbone']} ({m['precision']}, {e['shards']} shard(s))

A lepton-tune production bundle: an image classifier and the serving layout it was measured with.

## What it does
Classifies {c}-channel {h}x{w} images into {len(classes)} classes ({', '.join(map(str, classes[:20]))}{' ...' if len(classes) > 20 else ''}).
Input files are preprocessed exactly as the study's dataset ({manifest['dataset']['kind']}): resized to {h}x{w},
normalised with mean {manifest['preprocessing']['mean']} and std {manifest['preprocessing']['std']}.

## How it is served
Model `{m['backbone']}` trained with recipe `{m['recipe_hash']}` ({m['recipe']['epochs']} epochs, {m['recipe']['optimizer']}),
converted to {m['precision']}, run by the `{m['runtime']}` runtime on `{m['device']}`.
The lepton-tune engine runs {e['shards']} {e['mode']} shard(s) x {e['threads_per_shard']} thread(s),
batch size {e['batch_size']} (waiting up to {e['max_wait_ms']} ms to fill a batch), {e['pool_slots']} slots,
core pinning {'on' if e['pin'] else 'off'}.

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
lepton-tune predict THIS_DIR image.png --json     # classify files
lepton-tune verify THIS_DIR                       # re-measure here; exit 1 if it drifted
mlflow models serve -m THIS_DIR --env-manager local --host 127.0.0.1 --port 5001
```
```python
import lepton_tune
with lepton_tune.load_bundle("THIS_DIR") as engine:    # a started engine
    logits = engine.predict(images)                    # float32 [N, {c}, {h}, {w}] -> [N, {len(classes)}]
```

## Limits
The numbers hold for the host above under that protocol; on another machine run `lepton-tune verify`.
The weights are checked against their SHA-256 in `lepton.yaml` before every load; do not edit them.
"""
