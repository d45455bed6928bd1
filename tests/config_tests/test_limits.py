"""Bad input is one clear error (exit 2 in the CLI), never a traceback, a hang or a memory blow-up:
YAML alias bombs and deep nesting, NaN/inf numbers, and constraint expressions that are long, deep or huge."""

from __future__ import annotations

import resource
import subprocess
import sys
from pathlib import Path

import pytest

from lepton_tune.bundle import parse_tolerances
from lepton_tune.config import Expression, ExpressionError, load_search_space, load_study, safe_load_yaml
from lepton_tune.exceptions import BundleError, ConfigError, SelectionError
from lepton_tune.tuning._selection import parse_requirement

# 9 levels of 10 aliases each: 10^9 values once expanded, 300 bytes on disk.
BOMB = "a: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
    f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\n" for p, c in zip("abcdefgh", "bcdefghi")
)


def _limited() -> None:  # 4 GiB of heap at most: a blow-up fails fast instead of swapping the host
    resource.setrlimit(resource.RLIMIT_DATA, (4 << 30, 4 << 30))  # (RLIMIT_AS would stop torch's import)


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "lepton_tune", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=_limited,
        check=False,
    )


def test_alias_bomb_study_is_exit_2_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "bomb.yaml").write_text(BOMB + "name: *i\n")
    proc = _cli("search", "bomb.yaml", "--run-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "bomb.yaml: expands to more than 100000 values" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr) < 1000


def test_deep_and_huge_yaml_are_refused(tmp_path: Path) -> None:
    deep = tmp_path / "deep.yaml"
    deep.write_text("name: " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(ConfigError, match=r"deep\.yaml: nested deeper than 64 levels"):
        load_study(deep)
    big = tmp_path / "big.yaml"
    big.write_text("name: x\n" + "# padding\n" * 200_000)
    with pytest.raises(ConfigError, match=r"big\.yaml: .* over the 1024 KiB limit"):
        load_study(big)
    with pytest.raises(ConfigError, match=r"x\.yaml: expands to more than 100000 values"):
        safe_load_yaml(BOMB, "x.yaml")


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("budgets: {accuracy: .nan}", "budgets.accuracy"),
        ("protocol: {rate: .inf, loop: open}", "protocol.rate"),
        ("prices: {usd_per_core_hour: -.inf}", "prices.usd_per_core_hour"),
        ("dataset: {mean: [.nan, 0, 0], std: [1, 1, 1]}", "dataset.mean"),
    ],
)
def test_nan_and_inf_in_yaml_name_the_key(tmp_path: Path, text: str, key: str) -> None:
    (tmp_path / "s.yaml").write_text(f"name: x\n{text}\n")
    with pytest.raises(ConfigError, match=rf"s\.yaml: {key}(\[\d+\])?: Input should be a finite number"):
        load_study(tmp_path / "s.yaml")
    proc = _cli("search", "s.yaml", "--run-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 2 and "finite number" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("text", ["accuracy>=1e999", "accuracy>=-1e400", "accuracy>=.", "accuracy>=1e"])
def test_require_must_be_a_finite_number(text: str) -> None:
    with pytest.raises(SelectionError, match=r"--require: .*the limit must be a finite number"):
        parse_requirement(text)


@pytest.mark.parametrize("text", ["nan", "inf", "memory_mb=nan", "accuracy=-inf", "1e999"])
def test_tolerance_must_be_a_finite_number(text: str) -> None:
    with pytest.raises(BundleError, match=r"--tolerance: .*must be a finite number >= 0"):
        parse_tolerances([text])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("shards + " * 100 + "1 > 0", r"over the 500-character limit"),
        ("-" * 200 + "shards > 0", r"nested deeper than 32 levels"),
        ("(" * 300 + "1" + ")" * 300, r"over the 500-character limit|cannot be parsed"),
        ('"ab" * 100000000 == mode', r"arithmetic takes numbers only, got str"),
        ("1e999 > shards", r"leaves the allowed range"),
        ("99999999999999999999999 > shards", r"leaves the allowed range"),
    ],
)
def test_expressions_are_bounded(text: str, message: str) -> None:
    with pytest.raises(ExpressionError, match=message):
        Expression.parse(text).evaluate({"shards": 2, "mode": "replica"})


def test_intermediate_values_stay_small() -> None:
    expr = Expression.parse("cores * cores * cores * cores * cores * cores * cores * cores > 0")
    with pytest.raises(ExpressionError, match=r"leaves the allowed range"):
        expr.evaluate({"cores": 10**9})


def test_huge_constraint_in_a_space_file_is_one_short_error(tmp_path: Path) -> None:
    path = tmp_path / "space.yaml"
    path.write_text("params: {shards: {low: 1, high: 2}}\nconstraints: ['" + "shards * " * 5000 + "1 > 0']\n")
    with pytest.raises(ConfigError, match=r"space\.yaml: constraints\[0\]: .* over the 500-character limit") as err:
        load_search_space(path)
    assert len(str(err.value)) < 400
