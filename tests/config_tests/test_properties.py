"""Property tests: any file fed to the spec loaders either loads or raises ConfigError, nothing else.

Inputs start from the shipped ``studies/quickstart.yaml`` and ``search_spaces/cpu.yaml`` and are
mutated (keys deleted, renamed, added; values replaced by other types, odd numbers, expressions),
plus random text and bytes. Every input goes through a real file, as a user's would.
"""

from __future__ import annotations

import copy
import itertools
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lepton_tune.config import HostFacts, load_search_space, load_study
from lepton_tune.exceptions import ConfigError

REPO = Path(__file__).resolve().parents[2]
HOST = HostFacts(cores=2, memory_gib=24.0, gpus=0)
STUDY = yaml.safe_load((REPO / "studies" / "quickstart.yaml").read_text())
SPACE = yaml.safe_load((REPO / "search_spaces" / "cpu.yaml").read_text())
STUDY["search_space"] = str(REPO / "search_spaces" / "cpu.yaml")  # found wherever the tmp file lives
STUDY_INLINE = {**copy.deepcopy(STUDY), "search_space": copy.deepcopy(SPACE)}

# LEPTON_PROPERTY_EXAMPLES=5000 for a deeper hunt; 150 keeps the suite fast.
SETTINGS = settings(
    max_examples=int(os.environ.get("LEPTON_PROPERTY_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

_counter = itertools.count()

# Words the loaders know, so mutations reach deep validation instead of failing at the first key.
WORDS = [
    "auto",
    "fp32",
    "bf16",
    "int8",
    "fp16",
    "small_cnn",
    "resnet18",
    "replica",
    "pipeline",
    "cpu",
    "cuda",
    "accuracy",
    "latency_p95_ms",
    "memory_mb",
    "throughput",
    "tpe",
    "nsga2",
    "grid",
    "digits",
    "synthetic",
    "imagefolder",
    "maximize",
    "minimize",
    "cores",
    "shards",
    "threads_per_shard",
    "batch_size",
    "",
]
EXPRESSIONS = [
    "shards * threads_per_shard <= cores",
    "shards / 0 > 1",
    "cores ** 99 > 1",
    "1 // 0 == 0",
    "__import__('os').system('true')",
    "shards.__class__",
    "lambda: 1",
    "not",
    "shards <",
    "x == 1",
    "mode == 'replica' or shards > 1",
    "[1, 2]",
    "shards if cores else 1",
    "(" * 200 + "1" + ")" * 200,
    "1e308 * 1e308 > 0",
    "shards % 0 == 1",
    "'a' < 1",
    "-(-(-shards)) > 0",
]
EXPR_CHARS = "abcdeghinoprst_ ()*+-/%<>=!.0123456789'\""

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([0, -1, 1, 2, 10**6, 2**63, 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(WORDS),
    st.sampled_from(EXPRESSIONS),
    st.text(alphabet=EXPR_CHARS, max_size=30),
    st.text(max_size=12),
)
keys = st.one_of(
    st.sampled_from(
        WORDS
        + [
            "low",
            "high",
            "step",
            "log",
            "choices",
            "params",
            "constraints",
            "name",
            "dataset",
            "train",
            "limits",
            "storage",
            "protocol",
            "kind",
        ]
    ),
    st.text(max_size=8),
    st.integers(-3, 3),
)
values = st.recursive(
    scalars,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=4)),
    max_leaves=8,
)


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside nested dicts/lists (the root included)."""
    out = [prefix]
    if isinstance(node, dict):
        for key, child in node.items():
            out.extend(_paths(child, (*prefix, key)))
    elif isinstance(node, list):
        for index, child in enumerate(node):
            out.extend(_paths(child, (*prefix, index)))
    return out


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for part in path:
        node = node[part]
    return node


@st.composite
def mutated(draw: st.DrawFn, base: dict[str, Any]) -> dict[str, Any]:
    doc = copy.deepcopy(base)
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(doc)
        path = draw(st.sampled_from(paths[::-1] if draw(st.booleans()) else paths))  # deep keys as often
        if not path:  # the root: add a key
            doc[draw(keys)] = draw(values)
            continue
        parent, last = _get(doc, path[:-1]), path[-1]
        action = draw(st.sampled_from(["replace", "delete", "rename", "add_sibling", "wrap"]))
        if action == "replace":
            parent[last] = draw(values)
        elif action == "delete":
            del parent[last]
        elif action == "rename" and isinstance(parent, dict):
            parent[draw(keys)] = parent.pop(last)
        elif action == "add_sibling" and isinstance(parent, dict):
            parent[draw(keys)] = draw(values)
        elif action == "add_sibling":
            parent.append(draw(values))
        else:  # wrap: a scalar where a list was expected, a list where a mapping was expected...
            parent[last] = [parent[last]] if draw(st.booleans()) else {draw(keys): parent[last]}
    return doc


def _write(tmp: Path, data: str | bytes) -> Path:
    path = tmp / f"input-{next(_counter)}.yaml"
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return path


def _dump(doc: Any) -> str:
    return yaml.safe_dump(doc, allow_unicode=True, sort_keys=False)


def _loads_or_config_error(loader: Any, path: Path) -> None:
    try:
        loader(path, host=HOST)
    except ConfigError as exc:
        assert exc.problems, "a ConfigError must say what is wrong"
        for line in exc.problems:  # config errors start with the file (then the key path)
            named_file = line.split(": ", 1)[0]
            assert named_file in (str(path), STUDY["search_space"]) or "search space file" in line, line


@pytest.fixture(scope="module")
def tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("properties")


def test_shipped_files_are_the_starting_point(tmp: Path) -> None:
    assert load_study(_write(tmp, _dump(STUDY)), host=HOST).name == "quickstart"
    assert load_search_space(_write(tmp, _dump(SPACE)), host=HOST).values_of("shards") == [1, 2]


@SETTINGS
@given(doc=st.one_of(mutated(STUDY), mutated(STUDY_INLINE)))
def test_mutated_study_loads_or_raises_config_error(tmp: Path, doc: dict[str, Any]) -> None:
    _loads_or_config_error(load_study, _write(tmp, _dump(doc)))


@SETTINGS
@given(doc=mutated(SPACE))
def test_mutated_search_space_loads_or_raises_config_error(tmp: Path, doc: dict[str, Any]) -> None:
    _loads_or_config_error(load_search_space, _write(tmp, _dump(doc)))


@SETTINGS
@given(
    data=st.one_of(
        st.text(max_size=200),
        st.binary(max_size=200),
        values.map(_dump),
        st.sampled_from(
            [
                "",
                "---",
                "- a\n- b",
                "a: [",
                "!!python/object:os.system x",
                "*x",
                "a: &x 1\nb: *x",
                "\t",
                "x: !!binary AAAA",
                "? [a]\n: 1",
            ]
        ),
    ),
    which=st.sampled_from([load_study, load_search_space]),
)
def test_random_text_loads_or_raises_config_error(tmp: Path, data: str | bytes, which: Any) -> None:
    _loads_or_config_error(which, _write(tmp, data))


numbers = st.one_of(
    st.integers(-5, 70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0, 1, 2, "auto", "2", None, 10**18, -(10**18), 1e-300, True]),
)


@SETTINGS
@given(
    low=numbers,
    high=numbers,
    step=numbers,
    log=st.sampled_from([False, True, "yes", None]),
    choices=st.lists(scalars, max_size=5),
    constraints=st.lists(
        st.one_of(st.sampled_from(EXPRESSIONS), st.text(alphabet=EXPR_CHARS, max_size=30), scalars), max_size=3
    ),
)
def test_ranges_and_constraints_load_or_raise_config_error(
    tmp: Path,
    low: Any,
    high: Any,
    step: Any,
    log: Any,
    choices: list[Any],
    constraints: list[Any],
) -> None:
    doc = {
        "params": {
            "shards": {"low": low, "high": high, "step": step, "log": log},
            "threads_per_shard": {"low": 1, "high": high},
            "batch_size": {"choices": choices},
            "mode": {"choices": ["replica", "pipeline"]},
        },
        "constraints": constraints,
    }
    _loads_or_config_error(load_search_space, _write(tmp, _dump(doc)))
