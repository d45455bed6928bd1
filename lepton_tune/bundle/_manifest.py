"""``lepton.yaml``: what a bundle is, how it was measured, and the checksum of every file it serves from.

A bundle's files are listed generically (``files``: path, sha256, size, role), so a runtime that
adds a file (an ONNX graph, a compiled artifact) only adds an entry; :func:`read_manifest`
refuses a bundle whose listed file is missing or differs from its checksum, and a bundle written by
a newer format version than this build reads.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from lepton_tune.exceptions import BundleError
from lepton_tune.models._cache import sha256_file

__all__ = ["FORMAT_VERSION", "MANIFEST", "file_entry", "read_manifest", "sha256_of", "verify_files", "write_manifest"]

#: The bundle layout version this build writes and the newest it reads.
FORMAT_VERSION = 1
MANIFEST = "lepton.yaml"
_REQUIRED = ("format_version", "engine", "model", "preprocessing", "files")


sha256_of = sha256_file  # one file digest for the model cache and bundles


def file_entry(root: Path, relative: str, role: str) -> dict[str, Any]:
    """The manifest entry of ``root / relative``: path, role, size and sha256."""
    path = root / relative
    return {"path": relative, "role": role, "size": path.stat().st_size, "sha256": sha256_of(path)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> Path:
    path = root / MANIFEST
    plain = json.loads(json.dumps(manifest, default=str))  # str subclasses (torch.__version__) -> str
    path.write_text(yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=120))
    return path


def verify_files(root: Path, manifest: dict[str, Any]) -> None:
    """Check every listed file exists and matches its size and sha256.

    Raises:
        BundleError: a file is missing (named) or its checksum differs (tampered or corrupt).
    """
    for entry in manifest["files"]:
        rel = str(entry.get("path", ""))
        path = (root / rel).resolve()
        if root.resolve() not in path.parents:
            raise BundleError(f"{root / MANIFEST}: files: {rel!r} points outside the bundle. The manifest is not valid")
        if not path.is_file():
            raise BundleError(f"{root / rel}: missing from the bundle ({entry.get('role', 'file')} listed in "
                              f"{MANIFEST}). Copy the whole bundle directory, or export it again")
        size = path.stat().st_size
        digest = sha256_of(path)
        if size != entry.get("size") or digest != entry.get("sha256"):
            raise BundleError(
                f"{root / rel}: checksum mismatch (sha256 {digest[:16]}..., expected {str(entry.get('sha256'))[:16]}...; "
                f"size {size}, expected {entry.get('size')}): the file was modified or corrupted. Refusing to load it; "
                "export the bundle again"
            )


def read_manifest(bundle: str | Path, *, verify: bool = True) -> dict[str, Any]:
    """Read ``DIR/lepton.yaml`` and (by default) verify the checksum of every listed file.

    Example:
        >>> read_manifest("bundle/")["engine"]["shards"]  # doctest: +SKIP
        2

    Raises:
        BundleError: not a bundle directory, unreadable manifest, a newer ``format_version``, a
            missing file (named) or a checksum mismatch.
    """
    root = Path(bundle)
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory. Pass the directory written by 'lepton-tune export'")
    if not path.is_file():
        raise BundleError(f"{path}: missing; {root} is not a lepton-tune bundle (export one with 'lepton-tune export')")
    try:
        manifest = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise BundleError(f"{path}: unreadable manifest ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: must hold a mapping, got {type(manifest).__name__}")
    version = manifest.get("format_version")
    if not isinstance(version, int):
        raise BundleError(f"{path}: format_version: must be an integer, got {version!r}")
    if version > FORMAT_VERSION:
        from lepton_tune import __version__

        raise BundleError(
            f"{path}: format_version {version} is newer than this lepton-tune ({__version__}) reads "
            f"(up to {FORMAT_VERSION}). Upgrade lepton-tune to load this bundle"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise BundleError(f"{path}: missing key(s) {', '.join(missing)}. The manifest is incomplete; export the bundle again")
    if verify:
        verify_files(root, manifest)
    return manifest
