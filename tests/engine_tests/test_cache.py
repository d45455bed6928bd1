"""The LRU result cache."""

from __future__ import annotations

import numpy as np

from lepton_tune.engine._cache import ResultCache, input_key


def test_key_depends_on_bytes_shape_and_dtype():
    a = np.arange(6, dtype=np.float32)
    assert input_key(a) == input_key(a.copy())
    assert input_key(a) != input_key(a.reshape(2, 3))
    assert input_key(a) != input_key(a + 1)
    assert input_key(np.zeros(2, np.float32)) != input_key(np.zeros(1, np.float64))


def test_least_recently_used_is_evicted():
    cache = ResultCache(capacity=2)
    for key in (b"a", b"b"):
        cache.put(key, np.full(2, ord(key), np.float32))
    assert cache.get(b"a") is not None  # a is now the most recent
    cache.put(b"c", np.zeros(2, np.float32))
    assert cache.get(b"b") is None and cache.get(b"a") is not None and len(cache) == 2


def test_values_are_copied_in_and_out():
    cache = ResultCache(capacity=1)
    value = np.ones(2, np.float32)
    cache.put(b"k", value)
    value[:] = 5
    out = cache.get(b"k")
    out[:] = 7
    assert cache.get(b"k").tolist() == [1.0, 1.0]


def test_capacity_zero_stores_nothing():
    cache = ResultCache(capacity=0)
    cache.put(b"k", np.ones(1, np.float32))
    assert cache.get(b"k") is None
