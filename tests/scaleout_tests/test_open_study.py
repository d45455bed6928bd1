"""What every worker does first (``open_study``), on a shared PostgreSQL study: no engine needed."""

from __future__ import annotations

from pathlib import Path

import pytest

from lepton_tune.config import load_study
from lepton_tune.exceptions import ConfigError, HostMismatchError
from lepton_tune.tuning import SearchOptions, open_study

pytestmark = pytest.mark.postgres


def _spec(**overrides: object):  # type: ignore[no-untyped-def]
    doc = {
        "name": "shared",
        "objectives": ["accuracy", "latency_p95_ms"],
        "baseline": False,
        "search_space": {
            "params": {
                "backbone": "small_cnn",
                "shards": {"low": 1, "high": 2},
                "batch_size": {"choices": list(range(1, 65))},
            }
        },
        "sampler": {"name": "random"},
    }
    return load_study({**doc, **overrides})


def test_second_worker_resumes_and_keeps_study_attrs(pg_url: str, tmp_path: Path) -> None:
    first, url, fingerprint = open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path))
    assert url == pg_url
    assert first.user_attrs["host"] == fingerprint
    assert first.user_attrs["objectives"] == ["accuracy", "latency_p95_ms"]
    second, _, _ = open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path))
    assert second._study_id == first._study_id
    assert second.metric_names == ["accuracy", "latency_p95_ms"]


def test_worker_with_other_objectives_is_refused(pg_url: str, tmp_path: Path) -> None:
    open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path))
    with pytest.raises(
        ConfigError,
        match=r"objectives: study 'shared' in this storage optimises \['accuracy', "
        r"'latency_p95_ms'\].*Use another --study-name",
    ):
        open_study(_spec(objectives=["accuracy", "memory_mb"]), SearchOptions(storage=pg_url, run_dir=tmp_path))


def test_worker_on_a_foreign_host_is_refused_unless_allowed(pg_url: str, tmp_path: Path) -> None:
    study, _, fingerprint = open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path))
    study.set_user_attr("host", {**fingerprint, "cpu_model": "Imaginary CPU 9000", "cores": 128})
    with pytest.raises(
        HostMismatchError,
        match=r"different fingerprint \(cpu_model: 'Imaginary CPU 9000' -> .*cores: "
        r"128 -> .*--allow-foreign-host",
    ):
        open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path))
    with pytest.warns(UserWarning, match="measured on another host"):
        open_study(_spec(), SearchOptions(storage=pg_url, run_dir=tmp_path, allow_foreign_host=True))
    assert study.user_attrs["host"]["cpu_model"] == "Imaginary CPU 9000"  # the study keeps its own host


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_seeded_workers_do_not_sample_the_same_points(pg_url: str, tmp_path: Path) -> None:
    spec = _spec(sampler={"name": "random", "seed": 0})
    asked = []
    for _ in range(3):  # three workers started at the same moment
        study, _, _ = open_study(spec, SearchOptions(storage=pg_url, run_dir=tmp_path))
        trial = study.ask()
        asked.append((trial.suggest_int("shards", 1, 2), trial.suggest_categorical("batch_size", list(range(1, 65)))))
    assert len(set(asked)) > 1, f"all workers drew {asked[0]}"
