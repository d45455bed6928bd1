"""Faults with real processes: killed shards, poisoned inputs, model errors, timeouts, bad input,
failed starts and a killed parent."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from lepton_tune.exceptions import (
    EngineError,
    EngineInputError,
    EngineTimeoutError,
    ShardCrashedError,
)
from tests.conftest import REPO
from tests.engine_tests._nets import (
    POISON,
    SHAPE,
    BrokenOnLoad,
    CrashNet,
    DropsRows,
    FailOnReload,
    RaiseNet,
    SleepNet,
    tiny_net,
)
from tests.engine_tests.conftest import gone, reference, shm_entries


def _wait_for(predicate, within: float = 10.0) -> bool:
    limit = time.monotonic() + within
    while time.monotonic() < limit:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_killed_shard_is_restarted_and_its_requests_retried(images, no_leftovers):
    net = SleepNet(0.02)
    expected = reference(net.inner, images)
    with Engine(net, EngineConfig(batch_size=2, pool_slots=4), input_shape=SHAPE) as eng:
        futures = [eng.submit(image) for image in images]
        victim = eng.pids()[1]
        os.kill(victim, signal.SIGKILL)
        assert _wait_for(lambda: eng.stats().restarts == 1)
        got = np.stack([f.result(timeout=30) for f in futures])
        assert _wait_for(lambda: len(eng.pids()) == 2)
        stats = eng.stats()
        np.testing.assert_allclose(eng.predict(images[:3]), expected[:3], atol=1e-5, rtol=0)
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)
    assert stats.restarts == 1 and victim not in stats.pids
    assert gone([victim] + stats.pids[1:])


def test_poisoned_request_fails_after_one_retry_and_the_engine_keeps_serving(images):
    net = CrashNet()
    poison = images[0].copy()
    poison[0, 0, 0] = POISON
    with Engine(net, EngineConfig(shards=2), input_shape=SHAPE) as eng:
        with pytest.raises(ShardCrashedError, match=r"engine: shard \d died .* after it had already been retried once"):
            eng.predict(poison[None])
        assert eng.stats().restarts == 2
        assert _wait_for(lambda: len(eng.pids()) == 3)
        np.testing.assert_allclose(eng.predict(images), reference(net.inner, images), atol=1e-5, rtol=0)


def test_model_error_fails_that_request_only(images):
    net = RaiseNet()
    poison = images[0].copy()
    poison[1, 2, 3] = POISON
    with Engine(net, EngineConfig(), input_shape=SHAPE) as eng:
        with pytest.raises(
            EngineError, match="engine: the model raised in shard 0 on this request: ValueError: poisoned pixel"
        ):
            eng.submit(poison).result(timeout=30)
        np.testing.assert_allclose(eng.predict(images), reference(net.inner, images), atol=1e-5, rtol=0)
        assert eng.stats().restarts == 0


def test_request_timeout_raises_and_close_does_not_hang(images):
    with Engine(SleepNet(1.0), EngineConfig(request_timeout_s=0.3), input_shape=SHAPE) as eng:
        with pytest.raises(EngineTimeoutError, match=r"engine: no answer within request_timeout_s = 0.3 s"):
            eng.predict(images[:1])
        future = eng.submit(images[1])
        with pytest.raises(EngineTimeoutError, match="request_timeout_s = 0.3 s"):
            future.result(timeout=10)  # failed by the engine's own deadline watch


def test_wrong_input_names_expected_and_got_and_engine_keeps_serving(net, images):
    with Engine(net, EngineConfig(), input_shape=SHAPE) as eng:
        with pytest.raises(
            EngineInputError, match=r"predict\(\) batch has shape \(2, 3, 8, 8\), expected \('N', 3, 16, 16\)"
        ):
            eng.predict(np.zeros((2, 3, 8, 8), np.float32))
        with pytest.raises(
            EngineInputError, match=r"submit\(\) image has shape \(1, 3, 16, 16\), expected \(3, 16, 16\)"
        ):
            eng.submit(images[:1])
        with pytest.raises(EngineInputError, match=r"has dtype float64, expected float32. Convert it with .astype"):
            eng.predict(images.astype(np.float64))
        np.testing.assert_allclose(eng.predict(images), reference(net, images), atol=1e-5, rtol=0)


def test_first_request_without_batch_dimension_is_refused(net):
    with (
        Engine(net, EngineConfig()) as eng,
        pytest.raises(EngineInputError, match=r"predict\(\) batch has shape \(16,\), expected \(N, \*image_shape\)"),
    ):
        eng.predict(np.zeros(16, np.float32))


def test_model_failing_on_the_input_shape_is_reported(net):
    with pytest.raises(EngineError, match=r"engine: the model failed on one zero image of shape \(5, 16, 16\)"):
        Engine(net, EngineConfig(), input_shape=(5, 16, 16)).start()


def test_shard_that_cannot_start_is_reported_and_nothing_is_left(no_leftovers):
    eng = Engine(BrokenOnLoad(), EngineConfig(shards=2), input_shape=SHAPE)
    with pytest.raises(EngineError, match="engine: shard of lane 0 failed to start: RuntimeError: cannot load here"):
        eng.start()
    assert eng.pids() == [os.getpid()]


_PARENT = """
import json, sys, time
import numpy as np
from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from tests.engine_tests._nets import SHAPE, tiny_net
if __name__ == "__main__":
    eng = Engine(tiny_net(), EngineConfig(shards=2, mode=sys.argv[1]), input_shape=SHAPE).start()
    eng.predict(np.zeros((4, *SHAPE), np.float32))
    print(json.dumps(eng.pids()), flush=True)
    time.sleep(120)
"""


@pytest.mark.parametrize("mode", ["replica", "pipeline"])
def test_killed_parent_leaves_no_shard_and_no_shared_memory(mode):
    before = shm_entries()
    child = subprocess.Popen([sys.executable, "-c", _PARENT, mode], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        pids = json.loads(child.stdout.readline())
        assert len(pids) == 3 and pids[0] == child.pid
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
        assert gone(pids[1:])
    finally:
        if child.poll() is None:
            child.kill()
    assert shm_entries() - before == set()


def test_close_from_another_thread_fails_waiting_requests(images):
    import threading

    eng = Engine(SleepNet(0.5), EngineConfig(pool_slots=1), input_shape=SHAPE).start()
    futures = [eng.submit(image) for image in images[:4]]
    threading.Thread(target=eng.close).start()
    with pytest.raises(EngineError, match="engine: closed before this request was answered"):
        futures[-1].result(timeout=30)
    assert _wait_for(lambda: eng.pids() == [os.getpid()])


_MAIN_SCRIPT = """
import json, sys
import numpy as np
import optuna  # heavy, and nothing the shard needs
import torch
from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from tests.engine_tests._nets import SHAPE, ImportProbe

class MainNet(torch.nn.Module):  # defined in __main__: the shard must re-run this script
    def forward(self, x):
        return torch.full((x.shape[0], 1), 3.0)

if __name__ == "__main__":
    x = np.zeros((2, *SHAPE), np.float32)
    with Engine(ImportProbe("optuna"), EngineConfig(), input_shape=SHAPE) as eng:
        probe = eng.predict(x)[:, 0].tolist()
    with Engine(MainNet(), EngineConfig(), input_shape=SHAPE) as eng:
        main = eng.predict(x)[:, 0].tolist()
    print(json.dumps([probe, main]))
"""


def test_shards_rerun_main_only_for_models_defined_there(tmp_path):
    script = tmp_path / "serve.py"
    script.write_text(_MAIN_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, str(script)], cwd=REPO, env=env, capture_output=True, text=True, timeout=240, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    probe, main = json.loads(out.stdout.strip().splitlines()[-1])
    assert probe == [0.0, 0.0]  # the script's imports (optuna) did not follow into the shard
    assert main == [3.0, 3.0]


@pytest.mark.parametrize("stage", [0, 1])
def test_killed_pipeline_stage_restarts_the_pipeline(images, stage):
    net = tiny_net()
    expected = reference(net, images)
    with Engine(net, EngineConfig(shards=2, mode="pipeline", batch_size=2, pool_slots=4), input_shape=SHAPE) as eng:
        futures = [eng.submit(image) for image in images]
        victim = eng.pids()[1 + stage]
        os.kill(victim, signal.SIGKILL)
        got = np.stack([f.result(timeout=30) for f in futures])
        assert _wait_for(lambda: len(eng.pids()) == 3 and victim not in eng.pids())
        np.testing.assert_allclose(eng.predict(images), expected, atol=1e-5, rtol=0)
        assert eng.stats().restarts == 1
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=0)


def test_close_during_a_restart_is_prompt(images):
    eng = Engine(tiny_net(), EngineConfig(), input_shape=SHAPE).start()
    os.kill(eng.pids()[1], signal.SIGKILL)
    assert _wait_for(lambda: eng.stats().restarts == 1)
    eng.close()
    assert eng.pids() == [os.getpid()]


def test_shard_that_cannot_restart_fails_the_waiting_requests(images, tmp_path):
    marker = tmp_path / "no-more-starts"
    with Engine(FailOnReload(str(marker), seconds=0.5), EngineConfig(), input_shape=SHAPE) as eng:
        future = eng.submit(images[0])
        time.sleep(0.1)  # the request is in the shard now
        marker.touch()
        os.kill(eng.pids()[1], signal.SIGKILL)
        with pytest.raises(
            ShardCrashedError,
            match=r"engine: shard of lane 0 died and could not be restarted: "
            r"RuntimeError: marker present",
        ):
            future.result(timeout=60)


def test_model_returning_the_wrong_batch_fails_the_batch(images):
    with Engine(DropsRows(), EngineConfig(batch_size=2, pool_slots=2), input_shape=SHAPE) as eng:
        with pytest.raises(
            EngineError,
            match=r"the model raised in shard 0 on this request: ValueError: stage 0 "
            r"output shape \(1, 5\), expected \(2, 5\)",
        ):
            eng.predict(images[:2])
        assert eng.predict(images[:1]).shape == (1, 5)
