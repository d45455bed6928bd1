from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from lepton_tune.config import TrainRecipe
from lepton_tune.exceptions import CacheError
from lepton_tune.models import ModelCache, content_key, train_model

RECIPE = TrainRecipe(epochs=2, batch_size=16, seed=3)


def test_default_root_comes_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEPTON_TUNE_CACHE", str(tmp_path / "c"))
    assert ModelCache().root == tmp_path / "c"
    monkeypatch.delenv("LEPTON_TUNE_CACHE")
    assert ModelCache().root == Path.home() / ".cache" / "lepton-tune"


def test_hit_skips_training(tmp_path: Path, tiny_synthetic) -> None:
    cache = ModelCache(tmp_path)
    first = train_model("small_cnn", RECIPE, tiny_synthetic, cache=cache)
    events: list[dict] = []
    second = train_model("small_cnn", RECIPE, tiny_synthetic, cache=cache, progress=events.append)
    assert not first.from_cache and second.from_cache and second.train_seconds == 0.0
    assert [e["event"] for e in events] == ["cache_hit"]
    assert second.val_accuracy == first.val_accuracy and second.epochs_run == first.epochs_run
    for a, b in zip(first.module.state_dict().values(), second.module.state_dict().values()):
        assert torch.equal(a, b)
    (entry,) = cache.entries()
    assert entry["backbone"] == "small_cnn" and entry["precision"] == "fp32" and entry["key"] == first.recipe_hash
    assert Path(entry["path"]) == cache.path_for(first.recipe_hash)
    assert entry["size"] == (cache.path_for(first.recipe_hash) / "weights.pt").stat().st_size
    assert cache.clear() == 1 and cache.entries() == []


@pytest.mark.parametrize("damage", ["truncate", "flip", "meta"])
def test_corrupt_entry_is_warned_about_and_retrained(tmp_path: Path, tiny_synthetic, damage: str) -> None:
    cache = ModelCache(tmp_path)
    first = train_model("small_cnn", RECIPE, tiny_synthetic, cache=cache)
    weights = cache.path_for(first.recipe_hash) / "weights.pt"
    blob = weights.read_bytes()
    if damage == "truncate":
        weights.write_bytes(blob[: len(blob) // 2])
    elif damage == "flip":
        weights.write_bytes(blob[:-10] + bytes([blob[-10] ^ 0xFF]) + blob[-9:])
    else:
        (weights.parent / "meta.json").write_text("{not json")
    with pytest.warns(
        UserWarning, match=r"weights\.pt: corrupt model cache entry \((checksum mismatch|unreadable meta\.json)"
    ):
        again = train_model("small_cnn", RECIPE, tiny_synthetic, cache=cache)
    assert not again.from_cache
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert train_model("small_cnn", RECIPE, tiny_synthetic, cache=cache).from_cache


def _train_in_child(root: str, dataset, barrier, out) -> None:
    barrier.wait()
    events: list[str] = []
    tm = train_model(
        "small_cnn",
        RECIPE.model_copy(update={"epochs": 4}),
        dataset,
        cache=ModelCache(root),
        progress=lambda e: events.append(e["event"]),
    )
    out.put((tm.from_cache, tm.recipe_hash, events))


def test_concurrent_processes_train_once(tmp_path: Path, tiny_synthetic) -> None:
    ctx = mp.get_context("spawn")
    barrier, out = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=_train_in_child, args=(str(tmp_path), tiny_synthetic, barrier, out)) for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    assert sorted(hit for hit, _, _ in results) == [False, True]  # one trained, the other waited and reused
    assert len({key for _, key, _ in results}) == 1 and len(ModelCache(tmp_path).entries()) == 1
    reused = next(events for hit, _, events in results if hit)
    trained = next(events for hit, _, events in results if not hit)
    assert reused[-1] == "cache_hit" and "epoch" not in reused and trained.count("epoch") == 4


def test_unwritable_root_is_named(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    cache = ModelCache(tmp_path / "file")
    with pytest.raises(
        CacheError, match=r"file/entries/k: cannot create model cache directory .* Set LEPTON_TUNE_CACHE"
    ):
        cache.store("k", {}, {})


def test_content_key_is_order_independent() -> None:
    assert content_key({"a": 1, "b": [1, 2]}) == content_key({"b": [1, 2], "a": 1})
    assert content_key({"a": 1}) != content_key({"a": 2})


def test_store_then_load_round_trip(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path)
    cache.store("k1", {"w": torch.arange(3.0)}, {"backbone": "x"})
    state, meta = cache.load("k1")
    assert torch.equal(state["w"], torch.arange(3.0)) and meta["backbone"] == "x"
    assert json.loads((cache.path_for("k1") / "meta.json").read_text())["sha256"] == meta["sha256"]
    assert cache.load("absent") is None
    assert not list(cache.path_for("k1").glob(".*.tmp"))


def test_a_held_lock_makes_the_second_caller_wait(tmp_path: Path, tiny_synthetic) -> None:
    import threading

    from lepton_tune.models import recipe_hash

    cache = ModelCache(tmp_path)
    key = recipe_hash("small_cnn", RECIPE, tiny_synthetic)
    events: list[str] = []
    waiting = threading.Event()

    def progress(e: dict) -> None:
        events.append(e["event"])
        if e["event"] == "waiting":
            waiting.set()

    with cache.lock(key):
        worker = threading.Thread(
            target=train_model,
            args=("small_cnn", RECIPE, tiny_synthetic),
            kwargs={"cache": cache, "progress": progress},
        )
        worker.start()
        assert waiting.wait(timeout=60)
        assert "start" not in events  # nothing trains while the lock is held elsewhere
    worker.join(timeout=120)
    assert events[0] == "waiting" and events[-1] == "done" and len(cache.entries()) == 1


def test_new_root_gets_the_marker_and_a_foreign_one_does_not(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "new")
    cache.store("k1", {"w": torch.zeros(2)}, {"backbone": "x"})
    assert (tmp_path / "new" / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    assert cache.is_marked()
    (tmp_path / "home").mkdir()
    (tmp_path / "home" / "notes.txt").write_text("mine")
    foreign = ModelCache(tmp_path / "home")
    foreign.store("k1", {"w": torch.zeros(2)}, {"backbone": "x"})  # a mistyped root is used, never claimed
    assert not (tmp_path / "home" / "CACHEDIR.TAG").exists() and not foreign.is_marked()


def test_clear_refuses_a_root_without_the_marker(tmp_path: Path) -> None:
    # A directory that merely looks like a cache: the sub-folder names and a meta.json with a matching key.
    root = tmp_path / "projects"
    (root / "entries" / "k1").mkdir(parents=True)
    (root / "entries" / "k1" / "meta.json").write_text(json.dumps({"key": "k1"}))
    (root / "locks").mkdir()
    (root / "locks" / "k1.lock").write_text("")
    (root / "report.docx").write_text("mine")
    with pytest.raises(
        CacheError,
        match=r"projects: not a lepton-tune model cache \(no CACHEDIR\.TAG marker.*nothing "
        r"deleted\. Check --cache-dir / LEPTON_TUNE_CACHE",
    ):
        ModelCache(root).clear()
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*")) == [
        "entries",
        "entries/k1",
        "entries/k1/meta.json",
        "locks",
        "locks/k1.lock",
        "report.docx",
    ]


def test_clear_removes_only_entries_it_can_prove(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "c")
    cache.store("k1", {"w": torch.zeros(2)}, {"backbone": "x"})
    with cache.lock("k1"):
        pass
    entries, locks = cache.root / "entries", cache.root / "locks"
    (entries / "other").mkdir()
    (entries / "other" / "meta.json").write_text(json.dumps({"key": "k1"}))  # claims another key: not proven
    (entries / "other" / "data.bin").write_bytes(b"x")
    (entries / "nometa").mkdir()
    (entries / "nometa" / "weights.pt").write_bytes(b"x")
    (entries / "loose.txt").write_text("mine")
    (locks / "notes.txt").write_text("mine")
    (cache.root / "mine.txt").write_text("mine")
    assert cache.clear() == 1
    left = sorted(str(p.relative_to(cache.root)) for p in cache.root.rglob("*"))
    assert left == [
        "CACHEDIR.TAG",
        "entries",
        "entries/loose.txt",
        "entries/nometa",
        "entries/nometa/weights.pt",
        "entries/other",
        "entries/other/data.bin",
        "entries/other/meta.json",
        "locks",
        "locks/notes.txt",
        "mine.txt",
    ]


def test_failed_store_leaves_no_temp_file(tmp_path: Path) -> None:
    cache = ModelCache(tmp_path / "c")

    class Unpicklable:
        def __reduce__(self):
            raise OSError("disk full")

    with pytest.raises(CacheError, match=r"cannot write model cache entry \(disk full\)\. Check free space"):
        cache.store("k1", {"w": Unpicklable()}, {})
    assert sorted(p.name for p in cache.root.rglob("*")) == ["CACHEDIR.TAG", "entries"]
