"""The product's samplers: seeded, and the QMC default scrambled so that its seed means a different sequence."""

from __future__ import annotations

import optuna
import pytest

from lepton_tune.config import HostFacts, SamplerSpec, load_search_space
from lepton_tune.tuning import make_sampler, suggest_point

HOST = HostFacts(cores=8, memory_gib=24.0, gpus=0)
SPACE = load_search_space(
    {
        "params": {
            "shards": {"low": 1, "high": "auto"},
            "threads_per_shard": {"low": 1, "high": "auto"},
            "batch_size": {"low": 1, "high": 64},
            "max_wait_ms": {"low": 0.0, "high": 10.0},
        }
    },
    host=HOST,
)


def first_points(name: str, seed: int, count: int = 6) -> list[dict]:
    study = optuna.create_study(sampler=make_sampler(SamplerSpec(name=name, seed=seed), SPACE, HOST))
    points = []
    for _ in range(count):
        trial = study.ask()
        points.append(suggest_point(trial, SPACE, HOST)[0])
        study.tell(trial, 0.0)
    return points


@pytest.mark.parametrize("name", ["qmc", "tpe", "random", "nsga2"])
def test_a_seed_reproduces_its_sequence(name: str) -> None:
    assert first_points(name, 3) == first_points(name, 3)


def test_qmc_is_scrambled_so_seeds_draw_different_sequences() -> None:
    # Optuna's QMC draws the first trial at random (the space is learnt from it); from the second on,
    # unscrambled Sobol gives every seed the same points, scrambled each seed is its own sequence.
    sequences = [first_points("qmc", seed)[1:] for seed in range(4)]
    assert len({repr(s) for s in sequences}) == 4
    assert SamplerSpec().name == "qmc"
