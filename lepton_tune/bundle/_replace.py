"""Where a bundle may be written, and how an old one is replaced without deleting anything else.

``export --force`` replaces ``--out`` only if it is empty or a lepton-tune bundle (a ``lepton.yaml``
manifest, and no file in the directory that the manifest or the bundle layout does not name). It is
never the current directory, ``/``, the home directory, an ancestor of any of them, or the run
directory / the directory holding the study database. The new bundle is written beside ``--out``,
the old one is renamed aside, the new one renamed in, and only then are the old bundle's own files
deleted, one by one: a file we did not write is never removed.
"""

from __future__ import annotations

import os
import secrets
import warnings
from collections.abc import Iterable
from pathlib import Path

import yaml

from lepton_tune.exceptions import BundleError

__all__ = ["LAYOUT_FILES", "bundle_files", "check_out_dir", "storage_dirs", "swap_in"]

#: Files every bundle holds besides the ones its manifest lists (lepton.yaml, model card, MLflow files).
LAYOUT_FILES = (
    "lepton.yaml",
    "README.md",
    "MLmodel",
    "requirements.txt",
    "python_env.yaml",
    "conda.yaml",
    "lepton.sha256",
)
_MANIFEST_MAX_BYTES = 1 << 20


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def storage_dirs(url: str | None) -> list[Path]:
    """The directory holding a file-backed study storage (SQLite or journal); empty for a server URL.

    Example:
        >>> storage_dirs("sqlite:////tmp/runs/study.db")
        [PosixPath('/tmp/runs')]
    """
    if not url:
        return []
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///").split("?", 1)[0]
        return [Path(path).parent] if path and path != ":memory:" else []
    if url.startswith("journal://") or url.endswith(".journal"):
        return [Path(url.removeprefix("journal://")).parent]
    return []


def bundle_files(root: Path) -> set[str] | None:
    """The relative paths a bundle at ``root`` consists of, or None if ``root`` is not a lepton-tune bundle."""
    manifest_path = root / "lepton.yaml"
    try:
        if (
            manifest_path.is_symlink()
            or not manifest_path.is_file()
            or manifest_path.stat().st_size > _MANIFEST_MAX_BYTES
        ):
            return None
        manifest = yaml.safe_load(manifest_path.read_bytes())
    except (OSError, yaml.YAMLError, UnicodeDecodeError):
        return None
    if not isinstance(manifest, dict) or not isinstance(manifest.get("format_version"), int):
        return None
    files = manifest.get("files")
    if not isinstance(files, list):
        return None
    listed = {str(f.get("path")) for f in files if isinstance(f, dict) and isinstance(f.get("path"), str)}
    return set(LAYOUT_FILES) | {os.path.normpath(p) for p in listed}


def _foreign(root: Path, known: set[str]) -> str | None:
    """The first entry under ``root`` that is not one of ``known`` (a bundle's files), or None."""
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in sorted(filenames) + sorted(d for d in dirnames if os.path.islink(os.path.join(dirpath, d))):
            rel = os.path.relpath(os.path.join(dirpath, name), root)
            if rel not in known or os.path.islink(os.path.join(dirpath, name)):
                return rel
    return None


def _protected(out: Path, protect: Iterable[Path]) -> str | None:
    real = _real(out)
    if real == Path("/"):
        return "it is the root directory /"
    cwd = _real(Path.cwd())
    if real == cwd or real in cwd.parents:
        return f"it is the current directory{'' if real == cwd else ' ' + str(cwd) + ' or one of its parents'}"
    home = _real(Path.home())
    if real == home or real in home.parents:
        return f"it is the home directory{'' if real == home else ' ' + str(home) + ' or one of its parents'}"
    for place in protect:
        where = _real(Path(place))
        if real == where or real in where.parents:
            return f"it is or holds the run directory / study database directory {where}"
    return None


def check_out_dir(out: Path, *, overwrite: bool, protect: Iterable[Path] = ()) -> None:
    """Refuse an ``--out`` that the export must not replace (see the module docstring).

    Example:
        >>> check_out_dir(Path("/"), overwrite=True)
        Traceback (most recent call last):
        ...
        lepton_tune.exceptions.BundleError: /: refusing to write the bundle there: it is the root directory /. ...

    Raises:
        BundleError: naming the path, the rule it breaks and the fix.
    """
    fix = "Choose a new directory for --out (e.g. --out ./bundle)"
    if not (out.exists() or out.is_symlink()):
        return
    rule = _protected(out, protect)
    if rule:
        raise BundleError(f"{out}: refusing to write the bundle there: {rule}. {fix}")
    if out.is_symlink():
        raise BundleError(f"{out}: refusing to replace a symbolic link. {fix}, or pass the directory it points to")
    if not out.is_dir():
        raise BundleError(f"{out}: is a file, not a bundle directory; export never replaces it. {fix}")
    if not any(out.iterdir()):
        return
    known = bundle_files(out)
    if known is None:
        if not overwrite:
            raise BundleError(
                f"{out}: already exists and is not empty. {fix}, or pass --force to replace an "
                "existing lepton-tune bundle"
            )
        raise BundleError(
            f"{out}: already exists and is not a lepton-tune bundle (no valid lepton.yaml); --force "
            f"replaces only a bundle or an empty directory, never other files. {fix}"
        )
    if not overwrite:
        raise BundleError(
            f"{out}: already exists and is not empty (a lepton-tune bundle). {fix}, or pass --force to replace it"
        )
    stray = _foreign(out, known)
    if stray is not None:
        raise BundleError(
            f"{out}: is a lepton-tune bundle but also holds {stray!r}, which the bundle did not write; "
            f"--force never deletes such files. Move {stray!r} out of it, or {fix[0].lower()}{fix[1:]}"
        )


def _remove_bundle(root: Path, known: set[str]) -> None:
    """Delete the bundle files of ``root`` one by one, then its now-empty directories; warn about leftovers."""
    for rel in sorted(known):
        path = root / rel
        if path.is_file() and not path.is_symlink():
            path.unlink()
    for dirpath, _dirs, _files in sorted(os.walk(root), key=lambda t: -len(t[0])):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
    if root.exists():
        warnings.warn(f"{root}: the replaced bundle held files it did not list; they were kept there", stacklevel=3)


def swap_in(tmp: Path, out: Path, *, overwrite: bool, protect: Iterable[Path] = ()) -> None:
    """Move the complete bundle ``tmp`` to ``out``: old aside, new in, then the old bundle's files deleted."""
    check_out_dir(out, overwrite=overwrite, protect=protect)  # again: --out may have changed during the export
    aside: Path | None = None
    known: set[str] = set()
    if out.exists():
        known = bundle_files(out) or set()
        aside = out.with_name(f".{out.name}.old.{secrets.token_hex(4)}")
        os.rename(out, aside)
    try:
        os.rename(tmp, out)
    except OSError as exc:
        if aside is not None:
            os.rename(aside, out)
        raise BundleError(f"{out}: cannot move the new bundle into place ({exc}). Nothing was replaced") from None
    if aside is not None:
        _remove_bundle(aside, known)
