"""Engine end to end with real shard processes: outputs, order, layouts, cache, lifecycle."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import numpy as np
import pytest
import torch

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine, EngineStats
from lepton_tune.exceptions import ConfigError, EngineError
from tests.engine_tests._nets import OUTPUTS, SHAPE, ResidualNet, ThreadsNet
from tests.engine_tests.conftest import gone, reference, shm_entries, usable

LAYOUTS = [
    EngineConfig(),
    EngineConfig(shards=2, batch_size=4, max_wait_ms=2.0, pool_slots=8),
    EngineConfig(shards=2, mode="pipeline", batch_size=3),
    EngineConfig(shards=2, share_weights=True, pool_slots=2, batch_size=2),
]


@pytest.mark.parametrize("config", LAYOUTS, ids=["k1", "k2-batch4", "pipeline2", "k2-shared-2slots"])
def test_outputs_match_the_model_in_order(config, net, images, no_leftovers):
    expected = reference(net, images)
    before = shm_entries()
    with Engine(net, config, input_shape=SHAPE) as eng:
        out = eng.predict(images)
        single = eng.submit(images[5]).result(timeout=30)
        pids = eng.pids()
        assert shm_entries() - before == set()  # segments are unlinked even while in use
    assert out.dtype == np.float32 and out.shape == (len(images), OUTPUTS)
    np.testing.assert_allclose(out, expected, atol=1e-5, rtol=0)
    np.testing.assert_allclose(single, expected[5], atol=1e-5, rtol=0)
    assert len(pids) == config.shards + 1 and pids[0] == os.getpid()
    assert gone(pids[1:])


def test_pipeline_of_residual_net_matches(images):
    net = ResidualNet().eval()
    with Engine(net, EngineConfig(shards=2, mode="pipeline", batch_size=4), input_shape=SHAPE) as eng:
        np.testing.assert_allclose(eng.predict(images), reference(net, images), atol=1e-5, rtol=0)


def test_any_batch_length_and_submit_many(net, images):
    expected = reference(net, images)
    with Engine(net, EngineConfig(shards=2, batch_size=8, pool_slots=8), input_shape=SHAPE) as eng:
        assert eng.predict(images[:0]).shape == (0, OUTPUTS)
        np.testing.assert_allclose(eng.predict(images[:1]), expected[:1], atol=1e-5, rtol=0)
        futures = [eng.submit(image) for image in images]
        got = np.stack([f.result(timeout=30) for f in futures])
        stats = eng.stats()
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert stats.requests == 1 + len(images) and stats.pending == 0 and stats.queue_depth == [0, 0]


def test_torch_tensor_input_and_shape_from_first_request(net, images):
    eng = Engine(net, EngineConfig())
    with eng:
        assert eng.pids() == [os.getpid()]  # nothing started before the first request
        out = eng.predict(torch.from_numpy(images[:3]))
        assert eng.input_shape == SHAPE and eng.startup_seconds > 0
    np.testing.assert_allclose(out, reference(net, images[:3]), atol=1e-5, rtol=0)


def test_bf16_model_gets_bf16_inputs(images):
    net = ResidualNet().eval().to(torch.bfloat16)
    expected = reference(net, images, torch.bfloat16)
    for mode in ("replica", "pipeline"):
        with Engine(net, EngineConfig(precision="bf16", mode=mode, shards=2), input_shape=SHAPE) as eng:
            np.testing.assert_allclose(eng.predict(images), expected, atol=2e-2, rtol=2e-2)


@pytest.mark.filterwarnings("ignore")
def test_int8_static_and_dynamic_models(net, images):
    from torch.ao.quantization import get_default_qconfig_mapping, quantize_dynamic
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    calib = torch.from_numpy(images)
    static = prepare_fx(ResidualNet().eval(), get_default_qconfig_mapping("x86"), (calib[:1],))
    static(calib)
    static = convert_fx(static)
    dynamic = quantize_dynamic(net, {torch.nn.Linear}, dtype=torch.qint8)
    for mode in ("replica", "pipeline"):
        with Engine(static, EngineConfig(precision="int8", mode=mode, shards=2), input_shape=SHAPE) as eng:
            np.testing.assert_allclose(eng.predict(images), reference(static, images), atol=1e-5, rtol=0)
    # dynamic quantization scales activations per batch: compare image by image (batch_size 1)
    one_by_one = np.concatenate([reference(dynamic, images[i : i + 1]) for i in range(len(images))])
    with Engine(dynamic, EngineConfig(precision="int8_dynamic", shards=2), input_shape=SHAPE) as eng:
        np.testing.assert_allclose(eng.predict(images), one_by_one, atol=1e-5, rtol=0)


def test_cache_hit_returns_identical_bytes_without_a_shard(net, images):
    with Engine(net, EngineConfig(cache_entries=8), input_shape=SHAPE) as eng:
        first = eng.submit(images[0]).result(timeout=30)
        shard = eng.pids()[1]
        os.kill(shard, signal.SIGSTOP)  # a miss now could not be answered
        try:
            again = eng.submit(images[0].copy()).result(timeout=5)
        finally:
            os.kill(shard, signal.SIGCONT)
        again[:] = 0  # callers get copies: the cache stays intact
        third = eng.predict(images[:1])[0]
        stats = eng.stats()
    assert first.tobytes() == third.tobytes()
    assert stats.cache_hits == 2 and stats.requests == 3


@pytest.mark.skipif(len(usable()) < 2, reason="needs 2 usable cores")
def test_pinned_shards_have_disjoint_affinity_and_thread_settings():
    cores = usable()
    config = EngineConfig(shards=2, threads_per_shard=len(cores) // 2, pin=True)
    with Engine(ThreadsNet(), config, input_shape=SHAPE) as eng:
        stats = eng.stats()
        affinity = [sorted(os.sched_getaffinity(pid)) for pid in stats.pids[1:]]
        out = eng.predict(np.zeros((4, *SHAPE), np.float32))
    assert affinity == [stats.core_plan[0], stats.core_plan[1]]
    assert not set(affinity[0]) & set(affinity[1])
    assert (out == config.threads_per_shard).all()


def test_threads_per_shard_applied_when_oversubscribed():
    config = EngineConfig(shards=1, threads_per_shard=len(usable()) + 1, oversubscribe=True)
    with Engine(ThreadsNet(), config, input_shape=SHAPE) as eng:
        out = eng.predict(np.zeros((2, *SHAPE), np.float32))
        assert eng.stats().core_plan == {0: usable()}
    assert (out == config.threads_per_shard).all()


def _private_kib(pid: int) -> int:
    fields = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines()[1:]:
        name, value = line.split(":")
        fields[name] = int(value.split()[0])
    return fields["Private_Clean"] + fields["Private_Dirty"]


def test_share_weights_keeps_one_copy():
    big = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(768, 8192)).eval()  # 24 MiB of weights
    weights_kib = 768 * 8192 * 4 // 1024
    private = {}
    for share in (True, False):
        with Engine(big, EngineConfig(shards=2, share_weights=share), input_shape=SHAPE) as eng:
            eng.predict(np.zeros((2, *SHAPE), np.float32))
            private[share] = sum(_private_kib(pid) for pid in eng.pids()[1:])
    assert private[False] - private[True] > 1.5 * weights_kib


def test_stats_snapshot(net, images):
    with Engine(net, EngineConfig(shards=2), input_shape=SHAPE) as eng:
        eng.predict(images[:4])
        stats = eng.stats()
    assert isinstance(stats, EngineStats)
    assert stats.requests == 4 and stats.cache_hits == 0 and stats.restarts == 0
    assert len(stats.pids) == 3 and stats.device_memory_mb is None
    assert set(stats.core_plan) == {0, 1}


def test_layout_over_the_cores_is_refused(net):
    config = EngineConfig(shards=len(usable()) + 1)
    with pytest.raises(ConfigError, match=r"engine: shards \* threads_per_shard = .* exceeds the \d+ usable cores"):
        Engine(net, config, input_shape=SHAPE).start()


def test_lifecycle_errors(net, images):
    eng = Engine(net, EngineConfig(), input_shape=SHAPE)
    with pytest.raises(EngineError, match="engine: not started; use `with Engine"):
        eng.predict(images)
    with eng:
        eng.predict(images[:2])
    eng.close()  # idempotent
    with pytest.raises(EngineError, match="engine: this engine is closed; create a new Engine"):
        eng.submit(images[0])
    with pytest.raises(EngineError, match="engine: this engine is closed"):
        eng.start()


def test_exception_in_with_block_leaves_nothing(net, images, no_leftovers):
    with pytest.raises(KeyError), Engine(net, EngineConfig(shards=2, mode="pipeline"), input_shape=SHAPE) as eng:
        eng.predict(images[:2])
        pids = eng.pids()[1:]
        raise KeyError("boom")
    assert gone(pids)


def test_unsupported_runtime_is_refused(net):
    with pytest.raises(EngineError, match="runtime 'compile' serves fp32, bf16, fp16, not precision 'int8'"):
        Engine(net, EngineConfig(runtime="compile", precision="int8"), input_shape=SHAPE).start()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_cuda_without_a_gpu_is_refused(net):
    with pytest.raises(EngineError, match="device 'cuda' needs CUDA, which this host does not have"):
        Engine(net, EngineConfig(device="cuda"), input_shape=SHAPE).start()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_shards_share_the_gpu(net, images):
    with Engine(net, EngineConfig(device="cuda", shards=2), input_shape=SHAPE) as eng:
        out = eng.predict(images)
        stats = eng.stats()
    np.testing.assert_allclose(out, reference(net, images), atol=1e-4, rtol=1e-4)
    assert stats.device_memory_mb is not None and stats.device_memory_mb > 0
