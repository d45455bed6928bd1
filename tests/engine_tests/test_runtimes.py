"""Runtimes compile and onnxruntime through the whole engine: agreement with eager, refusals,
ORT thread settings, and shard restarts that re-create the compiled model or the session."""

from __future__ import annotations

import importlib.util
import os
import signal
import time

import numpy as np
import psutil
import pytest
import torch

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine, OnnxModule, build_runner, runtime_support
from lepton_tune.exceptions import EngineError
from lepton_tune.models import export_onnx
from tests.engine_tests._nets import SHAPE, tiny_net
from tests.engine_tests.conftest import gone, reference

ort_missing = importlib.util.find_spec("onnxruntime") is None
needs_ort = pytest.mark.skipif(ort_missing, reason="onnxruntime is not installed")


def _wait_for(predicate, within: float = 30.0) -> bool:
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        if predicate():
            return True
        time.sleep(0.02)
    return False


@pytest.fixture(scope="module")
def onnx_net() -> tuple[torch.nn.Module, OnnxModule]:
    net = tiny_net()
    art = export_onnx(net, SHAPE)
    return net, OnnxModule.from_file(art.path, output_shape=art.output_shape)


@pytest.mark.parametrize(
    ("runtime", "precision", "mode", "device", "match"),
    [
        (
            "compile",
            "int8",
            "replica",
            "cpu",
            "runtime 'compile' serves fp32, bf16, fp16, not precision 'int8': int8 here is FX",
        ),
        ("compile", "int8_dynamic", "replica", "cpu", "runtime 'compile' serves .* not precision 'int8_dynamic'"),
        ("compile", "fp32", "pipeline", "cpu", "runtime 'compile' serves mode 'replica' only"),
        ("onnxruntime", "bf16", "replica", "cpu", "runtime 'onnxruntime' serves fp32, int8, not precision 'bf16'"),
        (
            "onnxruntime",
            "int8_dynamic",
            "replica",
            "cpu",
            "runtime 'onnxruntime' serves fp32, int8, not precision 'int8_dynamic'",
        ),
        ("onnxruntime", "fp32", "pipeline", "cpu", "runtime 'onnxruntime' serves mode 'replica' only"),
        ("onnxruntime", "fp32", "replica", "cuda", "runtime 'onnxruntime' runs on CPU here .* not device 'cuda'"),
    ],
)
def test_unsupported_combinations_have_reasons(runtime, precision, mode, device, match):
    import re

    reason = runtime_support(runtime, precision, mode, device)
    assert reason is not None and re.search(match, reason)


def test_supported_combinations():
    for runtime, precision in [("eager", "int8"), ("compile", "fp32"), ("compile", "bf16")]:
        assert runtime_support(runtime, precision) is None
    if not ort_missing:
        assert runtime_support("onnxruntime", "fp32") is None
        assert runtime_support("onnxruntime", "int8") is None


def test_missing_onnxruntime_is_a_stated_reason(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    assert runtime_support("onnxruntime") == "onnxruntime is not installed (pip install 'lepton-tune[onnx]')"


def test_engine_refuses_a_module_of_the_wrong_kind_before_starting_shards(onnx_net):
    net, onnx = onnx_net
    with pytest.raises(EngineError, match="engine: runtime 'onnxruntime' serves an OnnxModule .* got Sequential"):
        Engine(net, EngineConfig(runtime="onnxruntime"), input_shape=SHAPE).start()
    with pytest.raises(EngineError, match="engine: an OnnxModule is served by runtime 'onnxruntime', not 'eager'"):
        Engine(onnx, EngineConfig(), input_shape=SHAPE).start()
    with pytest.raises(EngineError, match="engine: runtime 'compile' serves mode 'replica' only"):
        Engine(net, EngineConfig(runtime="compile", shards=2, mode="pipeline"), input_shape=SHAPE).start()


@needs_ort
def test_ort_session_gets_the_shard_threads(onnx_net):
    _, onnx = onnx_net
    run = build_runner(onnx, precision="fp32", runtime="onnxruntime", threads=3)
    options = run.session.get_session_options()
    assert (options.intra_op_num_threads, options.inter_op_num_threads) == (3, 1)


def _threads_of_shard(onnx: OnnxModule, threads: int) -> int:
    config = EngineConfig(runtime="onnxruntime", threads_per_shard=threads, oversubscribe=True)
    with Engine(onnx, config, input_shape=SHAPE) as eng:
        eng.predict(np.zeros((2, *SHAPE), np.float32))
        return psutil.Process(eng.pids()[1]).num_threads()


@needs_ort
def test_ort_threads_in_a_shard_follow_threads_per_shard(onnx_net):
    _, onnx = onnx_net
    one, four = _threads_of_shard(onnx, 1), _threads_of_shard(onnx, 4)
    assert four - one >= 3  # ORT's pool: threads - 1 workers (the caller is one), torch's pool untouched


@needs_ort
def test_onnxruntime_agrees_with_eager_through_the_engine(onnx_net, images):
    net, onnx = onnx_net
    config = EngineConfig(runtime="onnxruntime", shards=2, batch_size=4, pool_slots=8, max_wait_ms=1.0)
    with Engine(onnx, config, input_shape=SHAPE) as eng:
        got = eng.predict(images)
    np.testing.assert_allclose(got, reference(net, images), atol=1e-5, rtol=0)


@needs_ort
def test_killed_onnxruntime_shard_restarts_with_a_new_session(onnx_net, images, no_leftovers):
    net, onnx = onnx_net
    expected = reference(net, images)
    many = np.concatenate([images] * 20)
    with Engine(onnx, EngineConfig(runtime="onnxruntime", batch_size=2, pool_slots=4), input_shape=SHAPE) as eng:
        futures = [eng.submit(image) for image in many]
        victim = eng.pids()[1]
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: eng.stats().restarts == 1)
        got = np.stack([f.result(timeout=60) for f in futures])
        assert _wait_for(lambda: len(eng.pids()) == 2)
        np.testing.assert_allclose(eng.predict(images), expected, atol=1e-5, rtol=0)
        pids = eng.pids()
    np.testing.assert_allclose(got, np.concatenate([expected] * 20), atol=1e-5, rtol=0)
    assert victim not in pids and gone([victim] + pids[1:])


@pytest.mark.slow
def test_compile_agrees_pads_partial_batches_and_recompiles_after_a_kill(images):
    net = tiny_net()
    expected = reference(net, images)
    with Engine(net, EngineConfig(runtime="compile", batch_size=4, pool_slots=8), input_shape=SHAPE) as eng:
        assert eng.startup_seconds > 0
        np.testing.assert_allclose(eng.predict(images), expected, atol=1e-5, rtol=0)  # 37 = 9 x 4 + a batch of 1
        victim = eng.pids()[1]
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: eng.stats().restarts == 1 and len(eng.pids()) == 2, within=120)
        np.testing.assert_allclose(eng.predict(images[:5]), expected[:5], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_compile_bf16_agrees_with_eager_bf16():
    from lepton_tune.models import CastWrapper

    net = CastWrapper(tiny_net().to(torch.bfloat16).to(memory_format=torch.channels_last), torch.bfloat16)
    x = torch.rand((3, *SHAPE))
    eager = build_runner(net, precision="bf16")(x)
    compiled = build_runner(net, precision="bf16", runtime="compile", batch_size=4)(x)
    assert compiled.shape == (3, 5) and compiled.dtype == torch.float32
    torch.testing.assert_close(compiled, eager, atol=3e-2, rtol=3e-2)
