"""Input checks at the engine boundary."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from lepton_tune.engine._request import as_images
from lepton_tune.exceptions import EngineInputError


def test_accepts_float32_arrays_and_tensors():
    assert as_images(torch.zeros(2, 3), (3,), batched=True).shape == (2, 3)
    out = as_images(np.zeros((3, 4), np.float32)[:, ::2], (3, 2), batched=False)
    assert out.flags["C_CONTIGUOUS"]


def test_rejects_dtype_and_shape_naming_both():
    with pytest.raises(EngineInputError, match=r"submit\(\) image has dtype int64, expected float32"):
        as_images(np.zeros(3, np.int64), (3,), batched=False)
    with pytest.raises(EngineInputError, match=r"predict\(\) batch has shape \(3,\), expected \('N', 3\)"):
        as_images(np.zeros(3, np.float32), (3,), batched=True)
    with pytest.raises(EngineInputError, match=r"submit\(\) image has shape \(4,\), expected \(3,\)"):
        as_images(np.zeros(4, np.float32), (3,), batched=False)
    assert issubclass(EngineInputError, ValueError)
