"""Where export may write, and the swap that replaces an old bundle: real directories, no study needed."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from lepton_tune.bundle._replace import bundle_files, check_out_dir, storage_dirs, swap_in
from lepton_tune.exceptions import BundleError


def _bundle(path: Path, *, extra: dict[str, str] | None = None) -> Path:
    path.mkdir(parents=True)
    (path / "weights.pt").write_bytes(b"w")
    (path / "README.md").write_text("card")
    (path / "MLmodel").write_text("flavors: {}")
    manifest = {"format_version": 1, "files": [{"path": "weights.pt", "role": "weights", "size": 1, "sha256": "x"}]}
    (path / "lepton.yaml").write_text(yaml.safe_dump(manifest))
    for name, text in (extra or {}).items():
        (path / name).write_text(text)
    return path


def test_current_directory_and_its_parents_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "thesis.tex").write_text("mine")
    monkeypatch.chdir(work)
    for out in (Path("."), Path(".."), work):
        with pytest.raises(
            BundleError,
            match=r"refusing to write the bundle there: it is the current directory.*"
            r"Choose a new directory for --out",
        ):
            check_out_dir(out, overwrite=True)
    assert (work / "thesis.tex").read_text() == "mine"


def test_root_home_and_run_dir_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    (tmp_path / "home" / "me").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "home" / "me")
    with pytest.raises(BundleError, match=r"^/: refusing to write the bundle there: it is the root directory /\."):
        check_out_dir(Path("/"), overwrite=True)
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    with pytest.raises(BundleError, match="it is the home directory"):
        check_out_dir(tmp_path / "home", overwrite=True)
    runs = tmp_path / "elsewhere" / "runs"
    runs.mkdir()
    with pytest.raises(BundleError, match=r"it is or holds the run directory / study database directory .*runs"):
        check_out_dir(runs, overwrite=True, protect=[runs])
    with pytest.raises(BundleError, match="study database directory"):
        check_out_dir(runs, overwrite=True, protect=storage_dirs(f"sqlite:///{runs}/study.db"))


def test_plain_file_and_foreign_directory_are_never_replaced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BundleError, match=r"notes\.txt: is a file, not a bundle directory; export never replaces it"):
        check_out_dir(tmp_path / "notes.txt", overwrite=True)
    photos = tmp_path / "photos"
    photos.mkdir()
    (photos / "a.jpg").write_bytes(b"x")
    with pytest.raises(
        BundleError,
        match=r"photos: already exists and is not a lepton-tune bundle \(no valid lepton\.yaml\); "
        r"--force replaces only a bundle or an empty directory",
    ):
        check_out_dir(photos, overwrite=True)
    with pytest.raises(BundleError, match=r"photos: already exists and is not empty\. .*pass --force"):
        check_out_dir(photos, overwrite=False)
    (photos / "lepton.yaml").write_text("format_version: [1\n")  # not a manifest: still not a bundle
    with pytest.raises(BundleError, match="not a lepton-tune bundle"):
        check_out_dir(photos, overwrite=True)


def test_bundle_holding_a_user_file_is_refused(tmp_path: Path) -> None:
    old = _bundle(tmp_path / "b", extra={"notes.md": "mine"})
    with pytest.raises(
        BundleError,
        match=r"is a lepton-tune bundle but also holds 'notes\.md', which the bundle did "
        r"not write; --force never deletes such files",
    ):
        check_out_dir(old, overwrite=True)
    assert bundle_files(old) is not None and (old / "notes.md").exists()


def test_swap_replaces_a_bundle_and_leaves_nothing_beside_it(tmp_path: Path) -> None:
    old = _bundle(tmp_path / "b")
    new = _bundle(tmp_path / ".b.new")
    (new / "weights.pt").write_bytes(b"new")
    swap_in(new, old, overwrite=True)
    assert (old / "weights.pt").read_bytes() == b"new"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b"]


def test_swap_refuses_a_directory_that_changed_during_the_export(tmp_path: Path) -> None:
    old = _bundle(tmp_path / "b")
    check_out_dir(old, overwrite=True)
    (old / "added-meanwhile.txt").write_text("mine")
    new = _bundle(tmp_path / ".b.new")
    with pytest.raises(BundleError, match="added-meanwhile.txt"):
        swap_in(new, old, overwrite=True)
    assert (old / "added-meanwhile.txt").read_text() == "mine"


def test_empty_directory_is_filled(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    check_out_dir(tmp_path / "b", overwrite=False)
    swap_in(_bundle(tmp_path / ".b.new"), tmp_path / "b", overwrite=False)
    assert (tmp_path / "b" / "lepton.yaml").is_file() and sorted(p.name for p in tmp_path.iterdir()) == ["b"]
