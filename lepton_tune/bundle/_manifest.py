"""``lepton.yaml``: what a bundle is, how it was measured, and the checksum of every file it serves from.

A bundle's files are listed generically (``files``: path, sha256, size, role), so a runtime that
adds a file (an ONNX graph, a compiled artifact) only adds an entry; :func:`read_manifest`
refuses a bundle whose listed file is missing or differs from its checksum, and a bundle written by
a newer format version than this build reads.

``lepton.yaml`` itself is covered by ``lepton.sha256`` (its SHA-256, ``sha256sum`` format), so every
byte that decides what is loaded is checked: the digest covers the manifest, the manifest covers
every other file. Export prints that digest; pass it as ``digest=`` to pin a bundle you received.
The manifest is validated before anything is built from it (types, sizes, a non-empty file list
holding the file its loader needs), so a malformed one is a :class:`BundleError`, never a traceback.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from pathlib import Path
from typing import Any

import yaml

from lepton_tune.exceptions import BundleError
from lepton_tune.models import sha256_file

__all__ = [
    "DIGEST",
    "FORMAT_VERSION",
    "MANIFEST",
    "file_entry",
    "manifest_digest",
    "read_manifest",
    "sha256_of",
    "verify_files",
    "write_manifest",
]

#: The bundle layout version this build writes and the newest it reads (2: ``lepton.sha256`` added).
FORMAT_VERSION = 2
MANIFEST = "lepton.yaml"
DIGEST = "lepton.sha256"
_REQUIRED = ("format_version", "engine", "model", "preprocessing", "files")
_MAX_MANIFEST_BYTES = 1 << 20  # a real manifest is a few KiB
_HEX64 = re.compile(r"[0-9a-f]{64}")
#: The file role each model loader serves from.
LOADER_ROLES = {
    "fp32": "weights",
    "cast": "weights",
    "int8_static": "weights",
    "int8_dynamic": "weights",
    "onnx": "onnx",
    "openvino": "openvino",
}


sha256_of = sha256_file  # one file digest for the model cache and bundles


def file_entry(root: Path, relative: str, role: str) -> dict[str, Any]:
    """The manifest entry of ``root / relative``: path, role, size and sha256."""
    path = root / relative
    return {"path": relative, "role": role, "size": path.stat().st_size, "sha256": sha256_of(path)}


def write_manifest(root: Path, manifest: dict[str, Any]) -> str:
    """Write ``lepton.yaml`` and its digest file; return the digest (the bundle's identity)."""
    plain = json.loads(json.dumps(manifest, default=str))  # str subclasses (torch.__version__) -> str
    blob = yaml.safe_dump(plain, sort_keys=False, default_flow_style=False, width=120).encode()
    (root / MANIFEST).write_bytes(blob)
    digest = hashlib.sha256(blob).hexdigest()
    (root / DIGEST).write_text(f"{digest}  {MANIFEST}\n")
    return digest


def manifest_digest(bundle: str | Path) -> str:
    """The SHA-256 of ``lepton.yaml``: one hex string that identifies every byte of the bundle."""
    return hashlib.sha256((Path(bundle) / MANIFEST).read_bytes()).hexdigest()


def _problems(manifest: dict[str, Any]) -> list[str]:
    """Every type/shape problem of the sections a load builds from (collected, not first-only)."""
    files = manifest.get("files")
    out = _file_problems(files)
    files = files if isinstance(files, list) else []
    out += _model_problems(manifest.get("model"), [f.get("role") for f in files if isinstance(f, dict)])
    out += _preprocessing_problems(manifest.get("preprocessing"))
    engine = manifest.get("engine")
    if not isinstance(engine, dict) or not all(isinstance(k, str) for k in engine):
        out.append(f"engine: must be a mapping of EngineConfig fields, got {_short(engine)}")
    classes = manifest.get("classes", [])
    if not isinstance(classes, list) or len(classes) > 100_000:
        out.append(f"classes: must be a list of names, got {_short(classes)}")
    return out


def _is_int(v: Any, lo: int, hi: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _file_problems(files: Any) -> list[str]:
    if not isinstance(files, list) or not files:
        return [f"files: must list the bundle's files (a non-empty list), got {_short(files)}"]
    out: list[str] = []
    for i, entry in enumerate(files):
        if not isinstance(entry, dict):
            out.append(f"files[{i}]: must be a mapping with path, role, size and sha256, got {_short(entry)}")
            continue
        rel = entry.get("path")
        if not isinstance(rel, str) or not rel or rel.startswith("/") or "\\" in rel or ".." in Path(rel).parts:
            out.append(f"files[{i}].path: must be a relative path inside the bundle, got {_short(rel)}")
        if not isinstance(entry.get("role"), str):
            out.append(f"files[{i}].role: must be a string, got {_short(entry.get('role'))}")
        if not _is_int(entry.get("size"), 0, 1 << 45):
            out.append(f"files[{i}].size: must be a non-negative integer, got {_short(entry.get('size'))}")
        if not isinstance(entry.get("sha256"), str) or not _HEX64.fullmatch(entry["sha256"]):
            out.append(f"files[{i}].sha256: must be 64 lower-case hex digits, got {_short(entry.get('sha256'))}")
    return out


def _model_problems(model: Any, roles: list[Any]) -> list[str]:
    if not isinstance(model, dict):
        return [f"model: must be a mapping, got {_short(model)}"]
    out: list[str] = []
    shape = model.get("image_shape")
    if not (
        isinstance(shape, list)
        and len(shape) == 3
        and _is_int(shape[0], 1, 3)
        and all(_is_int(v, 1, 4096) for v in shape[1:])
    ):
        out.append(f"model.image_shape: must be [channels 1-3, height, width] with sides 1-4096, got {_short(shape)}")
    if not _is_int(model.get("num_classes"), 1, 100_000):
        out.append(f"model.num_classes: must be an integer 1-100000, got {_short(model.get('num_classes'))}")
    loader = model.get("loader", "fp32")
    if loader not in LOADER_ROLES:
        out.append(f"model.loader: must be one of {', '.join(LOADER_ROLES)}, got {_short(loader)}")
    elif roles.count(LOADER_ROLES[loader]) != 1:
        out.append(
            f"files: loader {loader!r} serves from exactly one file with role "
            f"{LOADER_ROLES[loader]!r}, the list has {roles.count(LOADER_ROLES[loader])}"
        )
    spec = model.get("model_spec")
    if spec is not None and not isinstance(spec, dict):
        out.append(f"model.model_spec: must be a mapping or null, got {_short(spec)}")
    if not isinstance(model.get("backbone"), str):
        out.append(f"model.backbone: must be a string, got {_short(model.get('backbone'))}")
    return out


def _preprocessing_problems(pre: Any) -> list[str]:
    if not isinstance(pre, dict):
        return [f"preprocessing: must be a mapping, got {_short(pre)}"]
    out: list[str] = []
    if not _is_int(pre.get("image_size"), 1, 4096):
        out.append(f"preprocessing.image_size: must be an integer 1-4096, got {_short(pre.get('image_size'))}")
    if pre.get("channels") not in (1, 3):
        out.append(f"preprocessing.channels: must be 1 or 3, got {_short(pre.get('channels'))}")
    for key in ("mean", "std"):
        values = pre.get(key)
        if not (
            isinstance(values, list)
            and 1 <= len(values) <= 3
            and all(_is_num(v) for v in values)
            and (key == "mean" or all(v > 0 for v in values))
        ):
            rule = "finite numbers" if key == "mean" else "finite numbers > 0"
            out.append(f"preprocessing.{key}: must be 1-3 {rule}, got {_short(values)}")
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


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
        if (root / rel).is_symlink():
            raise BundleError(f"{root / rel}: is a symbolic link; a bundle holds plain files only. Export it again")
        if not path.is_file():
            raise BundleError(
                f"{root / rel}: missing from the bundle ({entry.get('role', 'file')} listed in "
                f"{MANIFEST}). Copy the whole bundle directory, or export it again"
            )
        size = path.stat().st_size
        digest = sha256_of(path)
        if size != entry.get("size") or digest != entry.get("sha256"):
            raise BundleError(
                f"{root / rel}: checksum mismatch (sha256 {digest[:16]}..., expected {str(entry.get('sha256'))[:16]}...; "
                f"size {size}, expected {entry.get('size')}): the file was modified or corrupted. Refusing to load it; "
                "export the bundle again"
            )


def read_manifest(bundle: str | Path, *, verify: bool = True, digest: str | None = None) -> dict[str, Any]:
    """Read ``DIR/lepton.yaml``, check it against ``lepton.sha256`` (and ``digest`` if given) and its
    schema, and (by default) verify the checksum of every listed file.

    Example:
        >>> read_manifest("bundle/")["engine"]["shards"]  # doctest: +SKIP
        2

    Raises:
        BundleError: not a bundle directory, unreadable or malformed manifest (named key), a
            manifest that does not match its digest, a newer ``format_version``, a missing file
            (named) or a checksum mismatch.
    """
    root = Path(bundle)
    path = root / MANIFEST
    if not root.is_dir():
        raise BundleError(f"{root}: no such bundle directory. Pass the directory written by 'lepton-tune export'")
    if not path.is_file():
        raise BundleError(f"{path}: missing; {root} is not a lepton-tune bundle (export one with 'lepton-tune export')")
    try:
        with path.open("rb") as fh:
            blob = fh.read(_MAX_MANIFEST_BYTES + 1)
    except OSError as exc:
        raise BundleError(f"{path}: unreadable manifest ({exc.strerror or exc})") from None
    if len(blob) > _MAX_MANIFEST_BYTES:
        raise BundleError(
            f"{path}: larger than {_MAX_MANIFEST_BYTES // 1024} KiB; a manifest is a few KiB. "
            "This is not a lepton-tune manifest; export the bundle again"
        )
    manifest = _parse(path, blob)
    version = manifest.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool):
        raise BundleError(f"{path}: format_version: must be an integer, got {_short(version)}")
    if version > FORMAT_VERSION:
        from lepton_tune import __version__

        raise BundleError(
            f"{path}: format_version {version} is newer than this lepton-tune ({__version__}) reads "
            f"(up to {FORMAT_VERSION}). Upgrade lepton-tune to load this bundle"
        )
    missing = [key for key in _REQUIRED if key not in manifest]
    if missing:
        raise BundleError(
            f"{path}: missing key(s) {', '.join(missing)}. The manifest is incomplete; export the bundle again"
        )
    if version < 2:
        raise BundleError(
            f"{path}: format_version {version} has no {DIGEST} covering the manifest itself; this "
            "lepton-tune loads only bundles whose every byte is checked. Export the bundle again"
        )
    _check_digest(root, blob, digest)
    problems = _problems(manifest)
    if problems:
        raise BundleError(
            f"{path}: "
            + "; ".join(problems[:5])
            + (f" (and {len(problems) - 5} more)" if len(problems) > 5 else "")
            + ". The manifest is not valid; export the bundle again"
        )
    if verify:
        verify_files(root, manifest)
    return manifest


def _parse(path: Path, blob: bytes) -> dict[str, Any]:
    try:
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BundleError(
            f"{path}: not UTF-8 text (byte {exc.start}); not a lepton-tune manifest. Export the bundle again"
        ) from None
    try:
        from lepton_tune.config import safe_load_yaml

        manifest = safe_load_yaml(text, str(path))
    except (yaml.YAMLError, ValueError) as exc:
        first = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise BundleError(f"{path}: unreadable manifest ({type(exc).__name__}: {first})") from None
    if not isinstance(manifest, dict):
        raise BundleError(f"{path}: must hold a mapping, got {type(manifest).__name__}")
    return manifest


def _check_digest(root: Path, blob: bytes, expected: str | None) -> None:
    actual = hashlib.sha256(blob).hexdigest()
    if expected is not None and actual != expected.strip().lower():
        raise BundleError(
            f"{root / MANIFEST}: sha256 {actual[:16]}... is not the digest you pinned "
            f"({expected.strip()[:16]}...): this is not the bundle you expected. Refusing to load it"
        )
    try:
        stored = (root / DIGEST).read_text(encoding="ascii", errors="replace")[:200].split()
    except OSError:
        raise BundleError(
            f"{root / DIGEST}: missing; it holds the checksum of {MANIFEST}. Copy the whole bundle "
            "directory, or export it again"
        ) from None
    if not stored or stored[0] != actual:
        raise BundleError(
            f"{root / MANIFEST}: checksum mismatch with {DIGEST} (sha256 {actual[:16]}..., expected "
            f"{(stored or ['?'])[0][:16]}...): the manifest was modified or corrupted. Refusing to load it; "
            "export the bundle again"
        )
