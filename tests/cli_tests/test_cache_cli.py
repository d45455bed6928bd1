"""`lepton-tune cache ls|clear`. Output is captured with capfd, not capsys: ``cli.main`` registers
faulthandler on the real stderr file descriptor."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import torch

from lepton_tune.cli import main
from lepton_tune.models import ModelCache


@pytest.fixture
def filled(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ModelCache:
    monkeypatch.setenv("LEPTON_TUNE_CACHE", str(tmp_path / "cache"))
    cache = ModelCache()
    cache.store("aaa", {"w": torch.zeros(10)}, {"backbone": "small_cnn", "recipe_hash": "aaa", "precision": "fp32"})
    cache.store("bbb", {"w": torch.zeros(5)}, {"backbone": "small_cnn", "recipe_hash": "aaa", "precision": "int8"})
    return cache


def test_ls_json_lists_entries(filled: ModelCache, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "ls", "--json"]) == 0
    rows = json.loads(capfd.readouterr().out)
    assert sorted(r["precision"] for r in rows) == ["fp32", "int8"]
    assert {r["backbone"] for r in rows} == {"small_cnn"} and all(r["size"] > 0 and r["created"] for r in rows)


def test_ls_table(filled: ModelCache, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "ls"]) == 0
    out = capfd.readouterr().out
    assert "small_cnn" in out and "int8" in out and "2 entries" in out


def test_cache_dir_option(tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "--cache-dir", str(tmp_path / "other"), "ls", "--json"]) == 0
    assert json.loads(capfd.readouterr().out) == []


def test_clear_yes_empties(filled: ModelCache, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["cache", "clear", "--yes"]) == 0
    assert filled.entries() == [] and "removed 2 entries" in capfd.readouterr().err


def test_clear_without_yes_and_no_terminal_refuses(
    filled: ModelCache, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["cache", "clear"]) == 1
    assert "would delete 2 entries" in capfd.readouterr().err and len(filled.entries()) == 2
    from lepton_tune._cli.cache import _clear
    from lepton_tune.exceptions import CacheError

    with pytest.raises(
        CacheError,
        match=r"cache clear: would delete 2 entries under .*cache, and stdin is not a terminal to confirm\. Pass --yes",
    ):
        _clear(filled, yes=False)


def test_clear_asks_on_a_terminal(filled: ModelCache, monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setattr("sys.stdin", Tty("n\n"))
    assert main(["cache", "clear"]) == 1 and len(filled.entries()) == 2
    monkeypatch.setattr("sys.stdin", Tty("y\n"))
    assert main(["cache", "clear"]) == 0 and filled.entries() == []


def test_clear_refuses_a_directory_lepton_tune_did_not_create(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    home = tmp_path / "home"
    for sub in ("entries/photos", "locks"):
        (home / sub).mkdir(parents=True)
    (home / "entries" / "photos" / "meta.json").write_text('{"key": "photos"}')
    (home / "locks" / "x.lock").write_text("")
    assert main(["cache", "--cache-dir", str(home), "clear", "--yes"]) == 2
    err = capfd.readouterr().err
    assert f"lepton-tune cache: error: {home}: not a lepton-tune model cache (no CACHEDIR.TAG marker" in err
    assert (home / "entries" / "photos" / "meta.json").exists() and (home / "locks" / "x.lock").exists()
