"""``isolation: thread``: K lanes as threads of the serving process, each with its own ORT session."""

from __future__ import annotations

import importlib.util
import os
import threading

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine, OnnxModule
from lepton_tune.exceptions import EngineError, EngineTimeoutError
from lepton_tune.models import export_onnx
from tests.engine_tests._nets import SHAPE, tiny_net
from tests.engine_tests.conftest import reference

pytestmark = pytest.mark.skipif(importlib.util.find_spec("onnxruntime") is None, reason="onnxruntime is not installed")


@pytest.fixture(scope="module")
def onnx_net() -> tuple[torch.nn.Module, OnnxModule]:
    net = tiny_net()
    art = export_onnx(net, SHAPE)
    return net, OnnxModule.from_file(art.path, output_shape=art.output_shape)


def _config(**kw: object) -> EngineConfig:
    return EngineConfig(**{"runtime": "onnxruntime", "isolation": "thread", **kw})


@pytest.mark.parametrize(
    ("fields", "got"),
    [
        ({"runtime": "eager"}, "runtime 'eager', mode 'replica', device 'cpu'"),
        ({"shards": 2, "mode": "pipeline"}, "runtime 'onnxruntime', mode 'pipeline'"),
        ({"device": "cuda"}, "runtime 'onnxruntime', mode 'replica', device 'cuda'"),
    ],
)
def test_thread_isolation_outside_onnxruntime_replica_cpu_is_refused(fields, got):
    with pytest.raises(
        ValidationError,
        match=rf"isolation 'thread' serves runtime 'onnxruntime' or 'openvino', mode 'replica', "
        rf"device 'cpu' only \(got {got}.*Use isolation: process",
    ):
        EngineConfig(**{"runtime": "onnxruntime", "isolation": "thread", **fields})


def test_thread_lanes_agree_with_eager_in_order_and_batch(onnx_net, images):
    net, onnx = onnx_net
    with Engine(onnx, _config(shards=2, batch_size=4, pool_slots=8, max_wait_ms=2.0), input_shape=SHAPE) as eng:
        got = eng.predict(images)
        futures = [eng.submit(image) for image in images]
        one_by_one = np.stack([f.result(timeout=30) for f in futures])
        stats = eng.stats()
        lanes = [t for t in threading.enumerate() if t.name.startswith("lepton-lane-")]
    expected = reference(net, images)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(one_by_one, expected, atol=1e-5, rtol=0)
    assert stats.pids == [os.getpid()]  # no shard processes: the memory sampled is this process's
    assert stats.requests == 2 * len(images) and stats.queue_depth == [0, 0] and stats.restarts == 0
    assert len(lanes) == 2
    assert not [t for t in threading.enumerate() if t.name.startswith("lepton-lane-")]  # joined at close


def test_pinned_thread_lanes_run_on_their_own_cores(onnx_net, images):
    _, onnx = onnx_net
    cores = sorted(os.sched_getaffinity(0))
    seen: dict[str, set[int]] = {}
    import lepton_tune.engine._threads as threads_module

    real = threads_module.ThreadDispatcher._prepare

    def spy(self, lane, shape):  # type: ignore[no-untyped-def]
        run = real(self, lane, shape)
        seen[threading.current_thread().name] = os.sched_getaffinity(0)
        return run

    threads_module.ThreadDispatcher._prepare = spy
    try:
        with Engine(onnx, _config(shards=len(cores), pin=True), input_shape=SHAPE) as eng:
            eng.predict(images[:4])
            plan = eng.stats().core_plan
    finally:
        threads_module.ThreadDispatcher._prepare = real
    assert {name: sorted(c) for name, c in seen.items()} == {f"lepton-lane-{i}": plan[i] for i in plan}
    assert os.sched_getaffinity(0) == set(cores)  # the caller's own thread is not pinned


class _BatchOfOne(torch.nn.Module):
    """Right for one image; for a batch it returns one row (the graph hard-codes the 1)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(1, -1)[:, :5]


def test_a_model_error_fails_its_batch_and_the_lane_serves_on(images):
    art = export_onnx(_BatchOfOne(), SHAPE)
    onnx = OnnxModule.from_file(art.path, output_shape=art.output_shape)
    with Engine(onnx, _config(batch_size=2, pool_slots=4, max_wait_ms=2_000), input_shape=SHAPE) as eng:
        pair = [eng.submit(image) for image in images[:2]]  # one batch of 2: the graph answers 1 row
        for future in pair:
            with pytest.raises(
                EngineError,
                match=r"the model raised in thread lane 0 on this request: ValueError: "
                r"output shape \(1, 5\) for a batch of 2",
            ):
                future.result(timeout=30)
        alone = eng.predict(images[2:3])  # a batch of 1 after the wait: served
    np.testing.assert_allclose(alone, images[2:3].reshape(1, -1)[:, :5], atol=1e-6, rtol=0)


def test_a_lane_that_cannot_start_is_reported(images):
    broken = OnnxModule(b"not an onnx graph", output_shape=(5,))
    with pytest.raises(EngineError, match=r"engine: thread lane 0 failed to start: .*"):
        Engine(broken, _config(), input_shape=SHAPE).start()


def test_requests_past_their_deadline_fail_and_close_answers_the_rest(onnx_net, images):
    _, onnx = onnx_net
    eng = Engine(
        onnx, _config(batch_size=64, pool_slots=64, max_wait_ms=10_000, request_timeout_s=0.5), input_shape=SHAPE
    ).start()
    try:
        waiting = eng.submit(images[0])  # the lane waits 10 s for a full batch: the deadline comes first
        with pytest.raises(EngineTimeoutError, match=r"request_timeout_s = 0.5 s"):
            waiting.result(timeout=10)
    finally:
        eng.close()
    eng.close()
    with pytest.raises(EngineError, match="this engine is closed"):
        eng.submit(images[0])
