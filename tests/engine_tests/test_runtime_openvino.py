"""Runtime openvino through the whole engine: refusals, the forced precision hint, lane threads,
agreement with eager in process and thread lanes, and a killed shard that compiles again."""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import time

import numpy as np
import psutil
import pytest
import torch
from pydantic import ValidationError

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine, OpenVinoModule, build_runner, runtime_support
from lepton_tune.engine._runtime_openvino import _capabilities, openvino_support
from lepton_tune.exceptions import EngineError
from tests.engine_tests._nets import SHAPE, tiny_net
from tests.engine_tests.conftest import reference

ov_missing = importlib.util.find_spec("openvino") is None
needs_ov = pytest.mark.skipif(ov_missing, reason="openvino is not installed (pip install 'lepton-tune[openvino]')")


@pytest.fixture(scope="module")
def ov_net() -> tuple[torch.nn.Module, OpenVinoModule]:
    if ov_missing:
        pytest.skip("openvino is not installed (pip install 'lepton-tune[openvino]')")
    from lepton_tune.models import convert_openvino

    net = tiny_net()
    art = convert_openvino(net, SHAPE)
    return net, OpenVinoModule.from_files(art.xml, output_shape=art.output_shape)


@pytest.mark.parametrize(
    ("precision", "mode", "device", "match"),
    [
        ("fp16", "replica", "cpu", "runtime 'openvino' serves fp32, bf16, int8, not precision 'fp16': int8 is NNCF"),
        ("int8_dynamic", "replica", "cpu", "runtime 'openvino' serves .* not precision 'int8_dynamic'"),
        ("fp32", "pipeline", "cpu", "runtime 'openvino' serves mode 'replica' only"),
        ("fp32", "replica", "cuda", "runtime 'openvino' runs on CPU here .* not device 'cuda'"),
    ],
)
def test_unsupported_openvino_combinations_have_reasons(precision, mode, device, match):
    reason = runtime_support("openvino", precision, mode, device)
    assert reason is not None and re.search(match, reason)


def test_bf16_needs_native_bf16_and_openvino_must_be_installed():
    assert openvino_support("bf16", ("FP32", "INT8", "BIN")) == (
        "precision 'bf16' on runtime 'openvino' needs a CPU with native bf16 (AVX512-BF16/AMX); OpenVINO's CPU "
        "plugin reports only FP32, INT8, BIN. Use fp32 or int8"
    )
    assert openvino_support("bf16", ("BF16", "FP32")) is None
    assert openvino_support("fp32", None) == "openvino is not installed (pip install 'lepton-tune[openvino]')"
    assert openvino_support("fp16", ("FP32",)).startswith("runtime 'openvino' serves fp32, bf16, int8")


@needs_ov
def test_what_this_host_supports_follows_openvinos_capabilities():
    assert runtime_support("openvino", "fp32") is None and runtime_support("openvino", "int8") is None
    bf16 = runtime_support("openvino", "bf16")
    assert (bf16 is None) == ("BF16" in _capabilities())


def test_thread_lanes_are_allowed_for_openvino_only_in_replica_cpu():
    assert EngineConfig(runtime="openvino", isolation="thread", shards=2).isolation == "thread"
    with pytest.raises(
        ValidationError,
        match=r"isolation 'thread' serves runtime 'onnxruntime' or 'openvino', mode "
        r"'replica', device 'cpu' only \(got runtime 'openvino', mode 'pipeline'",
    ):
        EngineConfig(runtime="openvino", isolation="thread", shards=2, mode="pipeline")


@needs_ov
def test_engine_refuses_a_module_of_the_wrong_kind(ov_net):
    net, ir = ov_net
    with pytest.raises(EngineError, match="engine: runtime 'openvino' serves an OpenVinoModule .* got Sequential"):
        Engine(net, EngineConfig(runtime="openvino"), input_shape=SHAPE).start()
    with pytest.raises(EngineError, match="engine: an OpenVinoModule is served by runtime 'openvino', not 'eager'"):
        Engine(ir, EngineConfig(), input_shape=SHAPE).start()


@needs_ov
def test_the_precision_hint_is_forced_never_openvinos_default(ov_net):
    _, ir = ov_net
    run = build_runner(ir, precision="fp32", runtime="openvino", threads=1)
    assert run.inference_precision == "<Type: 'float32'>"
    assert run.compiled.get_property("INFERENCE_NUM_THREADS") == 1
    assert run.compiled.get_property("NUM_STREAMS") == 1
    if "BF16" in _capabilities():
        bf16 = OpenVinoModule(
            ir.xml_bytes.numpy().tobytes(), ir.bin_bytes.numpy().tobytes(), output_shape=(5,), precision="bf16"
        )
        assert build_runner(bf16, precision="bf16", runtime="openvino").inference_precision == "<Type: 'bfloat16'>"


@needs_ov
@pytest.mark.parametrize("isolation", ["process", "thread"])
def test_openvino_agrees_with_eager_through_the_engine(ov_net, images, isolation):
    net, ir = ov_net
    config = EngineConfig(
        runtime="openvino", shards=2, batch_size=4, pool_slots=8, max_wait_ms=1.0, pin=True, isolation=isolation
    )
    with Engine(ir, config, input_shape=SHAPE) as eng:
        got = eng.predict(images)
    np.testing.assert_allclose(got, reference(net, images), atol=1e-5, rtol=0)


@needs_ov
def test_openvino_threads_in_a_shard_follow_threads_per_shard(ov_net):
    _, ir = ov_net

    def threads_of_shard(threads: int) -> int:
        config = EngineConfig(runtime="openvino", threads_per_shard=threads, oversubscribe=True)
        with Engine(ir, config, input_shape=SHAPE) as eng:
            eng.predict(np.zeros((2, *SHAPE), np.float32))
            return psutil.Process(eng.pids()[1]).num_threads()

    assert threads_of_shard(4) - threads_of_shard(1) >= 3  # the lane's stream uses INFERENCE_NUM_THREADS threads


@needs_ov
def test_killed_openvino_shard_restarts_and_compiles_again(ov_net, images, no_leftovers):
    net, ir = ov_net
    expected = reference(net, images)
    with Engine(ir, EngineConfig(runtime="openvino", batch_size=2, pool_slots=4), input_shape=SHAPE) as eng:
        victim = eng.pids()[1]
        os.kill(victim, signal.SIGKILL)
        limit = time.monotonic() + 60
        while eng.stats().restarts < 1 or len(eng.pids()) < 2:
            assert time.monotonic() < limit, "the killed shard was not restarted"
            time.sleep(0.05)
        np.testing.assert_allclose(eng.predict(images), expected, atol=1e-5, rtol=0)
        assert victim not in eng.pids()
