"""An engine started without input_shape is never poisoned by a malformed first request."""

from __future__ import annotations

import os

import numpy as np
import pytest

from lepton_tune.config import EngineConfig
from lepton_tune.engine import Engine
from lepton_tune.exceptions import EngineInputError
from tests.engine_tests._nets import SHAPE
from tests.engine_tests.conftest import reference

LAYOUTS = [EngineConfig(shards=1), EngineConfig(shards=2, batch_size=4), EngineConfig(shards=2, mode="pipeline")]


@pytest.mark.parametrize("config", LAYOUTS, ids=["k1", "k2-batch4", "pipeline2"])
def test_a_malformed_first_batch_fails_alone(net, images, config: EngineConfig, no_leftovers) -> None:
    wrong = np.zeros((2, 5, *SHAPE[1:]), np.float32)  # 5 channels: the first conv wants 3
    with Engine(net, config) as eng:
        with pytest.raises(
            EngineInputError,
            match=r"engine input: the first request's image shape \(5, 16, 16\) "
            r"does not fit the model .*The engine is still open",
        ):
            eng.predict(wrong)
        assert eng.pids() == [os.getpid()] and eng.input_shape is None  # nothing left running, nothing fixed
        np.testing.assert_allclose(eng.predict(images), reference(net, images), rtol=1e-4, atol=1e-5)
        assert eng.input_shape == SHAPE
        with pytest.raises(EngineInputError, match=r"has shape \(2, 5, 16, 16\), expected \('N', 3, 16, 16\)"):
            eng.predict(wrong)  # now the shape is known: refused before it reaches a shard
        np.testing.assert_allclose(
            eng.submit(images[0]).result(timeout=60), reference(net, images[:1])[0], rtol=1e-4, atol=1e-5
        )


def test_a_malformed_first_image_fails_alone(net, images, no_leftovers) -> None:
    with Engine(net, EngineConfig(shards=1)) as eng:
        for wrong in (np.zeros((16, 16), np.float32), np.zeros((1, 16, 16), np.float32)):
            with pytest.raises(EngineInputError, match=r"engine input: the first request's image shape"):
                eng.submit(wrong)
        out = eng.submit(images[0]).result(timeout=60)
        np.testing.assert_allclose(out, reference(net, images[:1])[0], rtol=1e-4, atol=1e-5)


def test_with_input_shape_a_failed_start_still_closes(images) -> None:
    """A shape the caller fixed and the model rejects is a broken engine, not a bad request."""
    import torch

    from lepton_tune.exceptions import EngineError

    net = torch.nn.Conv2d(5, 2, 3)
    with pytest.raises(EngineError, match="the model failed on one zero image of shape"):
        Engine(net, EngineConfig(shards=1), input_shape=SHAPE).start()
