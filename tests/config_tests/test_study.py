"""Study and search-space files: good files load, every bad input is one clear ConfigError."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from lepton_tune.config import HostFacts, load_search_space, load_study
from lepton_tune.exceptions import ConfigError

HOST = HostFacts(cores=2, memory_gib=24.0, gpus=0)


def _write(tmp_path: Path, text: str, name: str = "study.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _space(**params: object) -> dict:
    return {"params": params}


def test_shipped_files_load(repo: Path) -> None:
    for name in ("quickstart", "cpu-latency-224"):
        spec = load_study(repo / "studies" / f"{name}.yaml", host=HOST)
        assert spec.name == name
        assert spec.space.values_of("threads_per_shard") == [1, 2]
    assert load_search_space(repo / "search_spaces" / "gpu.yaml", host=HostFacts(8, 64.0, 1)).values_of("device") == [
        "cuda"
    ]


def test_auto_resolves_to_usable_cores() -> None:
    space = load_search_space(_space(shards={"low": 1, "high": "auto"}), host=HostFacts(6, 1.0, 0))
    assert space.values_of("shards") == [1, 2, 3, 4, 5, 6]


def test_conditional_values_follow_constraints() -> None:
    space = load_search_space(
        {
            **_space(shards={"low": 1, "high": "auto"}, threads_per_shard={"low": 1, "high": "auto"}),
            "constraints": ["shards * threads_per_shard <= cores"],
        },
        host=HostFacts(4, 1.0, 0),
    )
    assert space.feasible_values("threads_per_shard", {"shards": 2}, HostFacts(4, 1.0, 0)) == [1, 2]
    assert space.satisfies({"shards": 4, "threads_per_shard": 2}, HostFacts(4, 1.0, 0)) == [
        "shards * threads_per_shard <= cores"
    ]


def test_directions_are_implied() -> None:
    spec = load_study({"name": "d", "objectives": ["throughput", "memory_mb"], "search_space": _space()}, host=HOST)
    assert spec.directions == ["maximize", "minimize"]


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        (
            "name: x\nsearch_space: {params: {}}\nprotocl: {}\n",
            r"study.yaml: protocl: unknown key. Did you mean 'protocol'\?",
        ),
        (
            "name: x\nsearch_space: {params: {}}\nn_trials: many\n",
            r"study.yaml: n_trials: Input should be a valid integer.*got 'many'",
        ),
        (
            "name: x\nsearch_space: {params: {shards: {low: 3, high: 2}}}\n",
            r"search_space.*params.shards: low \(3\) must be <= high \(2\)",
        ),
        (
            "name: x\nsearch_space: {params: {precision: {choices: []}}}\n",
            r"params.precision.choices: choices must list at least one value",
        ),
        (
            "name: x\nsearch_space: {params: {shards: 2}, constraints: ['shards * foo <= cores']}\n",
            r"constraints\[0\]: names unknown parameter\(s\) foo",
        ),
        (
            "name: x\nsearch_space: {params: {shards: {low: 3, high: 4}}, constraints: ['shards <= cores']}\n",
            r"no point of the space satisfies .*cores=2",
        ),
        (
            "name: x\nsearch_space: {params: {}}\nobjectives: [accuracy, accuracy]\n",
            r"objectives: 'accuracy' listed twice",
        ),
        (
            "name: x\nsearch_space: {params: {}}\nbudgets: {latency: 3}\n",
            r"budgets: budget on unknown metric\(s\) 'latency'",
        ),
        (
            "name: x\nsearch_space: {params: {}}\ndataset: {kind: synthetic}\nobjectives: [accuracy]\n",
            r"objectives: 'accuracy' cannot be measured on a synthetic dataset",
        ),
        (
            "name: x\nsearch_space: {params: {shardz: 1}}\n",
            r"params.shardz: unknown parameter. Did you mean 'shards'\?",
        ),
        (
            "name: x\nsearch_space: {params: {pool_slots: {low: 1, high: auto}}}\n",
            r"params.pool_slots.high: 'auto' .* only allowed for shards, threads_per_shard",
        ),
        (
            "name: x\nsearch_space: {params: {batch_size: {choices: [0, 4]}}}\n",
            r"params.batch_size: Input should be greater than or equal to 1, got 0",
        ),
        (
            "name: x\nsearch_space: {params: {}, constraints: ['__import__(\"os\")']}\n",
            r"constraints\[0\]: .* is not allowed",
        ),
        ("name: x\nsearch_space: missing.yaml\n", r"missing.yaml: search space file cannot be read: it does not exist"),
        ("name: [x\n", r"study.yaml: invalid YAML at line \d+, column \d+"),
        ("- a\n- b\n", r"study.yaml: top level must be a mapping"),
        ("name: x\n", r"search_space: required key is missing"),
    ],
)
def test_bad_input_is_named(tmp_path: Path, text: str, pattern: str) -> None:
    with pytest.raises(ConfigError, match=pattern):
        load_study(_write(tmp_path, text), host=HOST)


def test_missing_file() -> None:
    with pytest.raises(ConfigError, match=r"nope.yaml: study file cannot be read: it does not exist"):
        load_study("nope.yaml", host=HOST)


def test_all_problems_reported_at_once(tmp_path: Path) -> None:
    text = "name: x\nsearch_space: {params: {shards: {low: 3, high: 2}}}\nobjectives: [accuracy, accuracy]\nbudgets: {nope: 1}\n"
    with pytest.raises(ConfigError) as info:
        load_study(_write(tmp_path, text), host=HOST)
    assert len(info.value.problems) == 3
    assert all(p.startswith(str(tmp_path / "study.yaml")) for p in info.value.problems)


def test_space_file_errors_name_the_space_file(tmp_path: Path) -> None:
    _write(tmp_path, "params: {threads_per_shard: {low: 0, high: 2}}\n", "space.yaml")
    with pytest.raises(
        ConfigError, match=r"space.yaml: params.threads_per_shard: Input should be greater than or equal to 1, got 0"
    ):
        load_study(_write(tmp_path, "name: x\nsearch_space: space.yaml\n"), host=HOST)


def test_cli_bad_study_exits_2(tmp_path: Path) -> None:
    bad = _write(tmp_path, "name: x\nsearch_space: {params: {shardz: 1}}\n")
    proc = subprocess.run(
        [sys.executable, "-m", "lepton_tune", "search", str(bad), "--run-dir", str(tmp_path / "runs")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr
    assert "params.shardz: unknown parameter" in proc.stderr
    assert not (tmp_path / "runs").exists(), "nothing may be written for a bad study"


def test_a_space_whose_layout_can_never_be_served_is_refused_at_load(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params:\n  isolation: thread\n  runtime: {choices: [eager, compile]}\n")
    with pytest.raises(
        ConfigError,
        match=r"space\.yaml.*params: no combination of runtime, isolation can be served "
        r"\(isolation 'thread' serves runtime 'onnxruntime'.*Change one of these",
    ):
        load_search_space(path)
    path.write_text("params:\n  isolation: thread\n  runtime: {choices: [eager, onnxruntime]}\n")
    assert load_search_space(path).values_of("isolation") == ["thread"]  # one servable combination is enough
