"""The content-addressed model cache: one directory per key, atomic writes, checksums, file locks.

Layout under the root (``$LEPTON_TUNE_CACHE``, default ``~/.cache/lepton-tune``)::

    CACHEDIR.TAG                the marker written when lepton-tune creates the root (Cache Directory Tagging)
    entries/<key>/weights.pt    a state dict (torch.save), loaded with weights_only=True
    entries/<key>/meta.json     what the entry is + the SHA-256 and size of weights.pt (written last)
    locks/<key>.lock            flock'ed while one process trains/converts that key

:meth:`ModelCache.clear` deletes only what it can prove the cache wrote: nothing under a root
without the marker, and under one with it only ``entries/<key>`` directories whose ``meta.json``
says ``key: <key>``, and ``locks/*.lock`` files.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch

from lepton_tune.exceptions import CacheError, CacheRootError

__all__ = ["ModelCache", "content_key"]

WEIGHTS = "weights.pt"
META = "meta.json"
MARKER = "CACHEDIR.TAG"
_SIGNATURE = "Signature: 8a477f597d28d172789f06886806bc55"  # bford.info/cachedir: backup tools skip the root
_MARKER_TEXT = f"{_SIGNATURE}\n# lepton-tune model cache: trained and converted weights, safe to delete.\n"


def content_key(parts: dict[str, Any]) -> str:
    """The cache key of ``parts``: SHA-256 of its canonical JSON, first 20 hex digits.

    Example:
        >>> content_key({"a": 1}) == content_key({"a": 1})
        True
    """
    blob = json.dumps(parts, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file, read in 1 MiB chunks (cache entries and bundle files)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with tmp.open("wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


class ModelCache:
    """Trained and converted weights by content key.

    Example:
        >>> import tempfile
        >>> cache = ModelCache(Path(tempfile.mkdtemp()))
        >>> cache.entries()
        []
    """

    def __init__(self, root: Path | str | None = None) -> None:
        if root is None:
            root = os.environ.get("LEPTON_TUNE_CACHE") or Path.home() / ".cache" / "lepton-tune"
        self.root = Path(root).expanduser()

    def __repr__(self) -> str:
        return f"ModelCache(root={str(self.root)!r})"

    def path_for(self, key: str) -> Path:
        """The directory of entry ``key`` (it may not exist)."""
        return self.root / "entries" / key

    def _mkdir(self, path: Path) -> None:
        try:
            self._make_root()
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(
                f"{path}: cannot create model cache directory ({exc}). Set LEPTON_TUNE_CACHE to a writable directory"
            ) from None

    def _make_root(self) -> None:
        """Create the root with its marker; an existing root gets the marker only if it is empty (ours now)."""
        try:
            self.root.mkdir(parents=True)
        except FileExistsError:
            if not self.root.is_dir() or any(self.root.iterdir()):
                return
        _atomic_write(self.root / MARKER, lambda fh: fh.write(_MARKER_TEXT.encode()))

    def is_marked(self) -> bool:
        """Whether the root holds the marker lepton-tune writes when it creates a cache directory."""
        marker = self.root / MARKER
        try:
            if marker.is_symlink() or not marker.is_file():
                return False
            with marker.open("rb") as fh:
                text = fh.read(4096).decode(errors="replace")
        except OSError:
            return False
        return text.startswith(_SIGNATURE) and "lepton-tune" in text

    @contextlib.contextmanager
    def lock(self, key: str, *, on_wait: Callable[[], None] | None = None) -> Iterator[None]:
        """Hold an exclusive file lock on ``key`` (other processes asking for it wait here).

        ``on_wait`` is called once if another process holds the lock, before waiting for it.
        """
        locks = self.root / "locks"
        self._mkdir(locks)
        with (locks / f"{key}.lock").open("a+") as fh:
            try:
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                if on_wait is not None:
                    on_wait()
                fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh.fileno(), fcntl.LOCK_UN)

    def store(self, key: str, state_dict: dict[str, Any], meta: dict[str, Any]) -> Path:
        """Write ``state_dict`` and ``meta`` atomically (weights first, meta with checksum last)."""
        entry = self.path_for(key)
        self._mkdir(entry)
        weights = entry / WEIGHTS
        try:
            _atomic_write(weights, lambda fh: torch.save(state_dict, fh))
            full = {
                **meta,
                "key": key,
                "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "size": weights.stat().st_size,
                "sha256": sha256_file(weights),
            }
            _atomic_write(entry / META, lambda fh: fh.write(json.dumps(full, indent=2, default=str).encode()))
        except OSError as exc:
            with contextlib.suppress(OSError):
                entry.rmdir()  # an entry directory this call made and could not fill
            raise CacheError(
                f"{entry}: cannot write model cache entry ({exc}). Check free space and permissions"
            ) from None
        return entry

    def _discard(self, entry: Path, why: str) -> None:
        warnings.warn(
            f"{entry / WEIGHTS}: corrupt model cache entry ({why}); discarding it and rebuilding", stacklevel=3
        )
        for name in (META, WEIGHTS):  # only the files an entry is made of; anything else stays
            with contextlib.suppress(OSError):
                (entry / name).unlink()
        with contextlib.suppress(OSError):
            entry.rmdir()

    def load(self, key: str) -> tuple[dict[str, Any], dict[str, Any]] | None:
        """Return ``(state_dict, meta)`` for ``key``, or None if absent or corrupt (corrupt: warned, removed)."""
        entry = self.path_for(key)
        meta_path, weights = entry / META, entry / WEIGHTS
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
        except (OSError, ValueError) as exc:
            self._discard(entry, f"unreadable {META}: {exc}")
            return None
        if not weights.is_file():
            self._discard(entry, "weights file missing")
            return None
        size, digest = weights.stat().st_size, sha256_file(weights)
        if size != meta.get("size") or digest != meta.get("sha256"):
            self._discard(
                entry,
                f"checksum mismatch: size {size} vs {meta.get('size')}, sha256 {digest[:12]} vs "
                f"{str(meta.get('sha256'))[:12]}",
            )
            return None
        try:
            with warnings.catch_warnings():  # quantized tensors go through TypedStorage (harmless warning)
                warnings.filterwarnings("ignore", message=".*TypedStorage is deprecated.*")
                state = torch.load(weights, map_location="cpu", weights_only=True)
        except Exception as exc:  # noqa: BLE001 - whatever torch raises, the entry is unusable
            self._discard(entry, f"torch.load failed: {type(exc).__name__}")
            return None
        return state, meta

    def entries(self) -> list[dict[str, Any]]:
        """Metadata of every complete entry (oldest first), each with ``path`` added."""
        found = []
        root = self.root / "entries"
        if not root.is_dir():
            return []
        for meta_path in root.glob(f"*/{META}"):
            try:
                meta = json.loads(meta_path.read_text())
            except (OSError, ValueError):
                meta = {"key": meta_path.parent.name, "corrupt": True}
            meta["path"] = str(meta_path.parent)
            found.append(meta)
        return sorted(found, key=lambda m: (str(m.get("created", "")), str(m.get("key"))))

    def size_bytes(self) -> int:
        """Total bytes of the cache's entries and locks (nothing else under the root is counted)."""
        return sum(
            p.stat().st_size
            for sub in ("entries", "locks")
            if (self.root / sub).is_dir()
            for p in (self.root / sub).rglob("*")
            if p.is_file() and not p.is_symlink()
        )

    def _proven_entries(self) -> list[Path]:
        """``entries/<key>`` directories (not links) whose ``meta.json`` says ``key: <key>``."""
        found = []
        root = self.root / "entries"
        if not root.is_dir() or root.is_symlink():
            return []
        for entry in root.iterdir():
            meta_path = entry / META
            if entry.is_symlink() or not entry.is_dir() or meta_path.is_symlink() or not meta_path.is_file():
                continue
            try:
                meta = json.loads(meta_path.read_bytes()[: 1 << 20])
            except (OSError, ValueError):
                continue
            if isinstance(meta, dict) and meta.get("key") == entry.name:
                found.append(entry)
        return found

    def check_owned(self) -> None:
        """Raise unless the root is absent or holds the marker lepton-tune wrote when it created it.

        Raises:
            CacheRootError: naming the root, the missing marker and the fix.
        """
        if self.root.exists() and not self.is_marked():
            raise CacheRootError(
                f"{self.root}: not a lepton-tune model cache (no {MARKER} marker, which lepton-tune writes when it "
                "creates a cache directory); nothing deleted. Check --cache-dir / LEPTON_TUNE_CACHE; if this is a cache "
                "made by an older lepton-tune, delete its entries/ folder yourself"
            )

    def clear(self) -> int:
        """Remove every entry the cache can prove it wrote; return how many were removed.

        Raises:
            CacheRootError: the root lacks the marker lepton-tune writes when it creates a cache (so it
                may be any directory, e.g. a mistyped ``--cache-dir``); nothing is deleted.
        """
        self.check_owned()
        if not self.root.is_dir():
            return 0
        entries = self._proven_entries()
        for entry in entries:
            shutil.rmtree(entry)
        locks = self.root / "locks"
        if locks.is_dir() and not locks.is_symlink():
            for lock in locks.glob("*.lock"):
                if lock.is_file() and not lock.is_symlink():
                    lock.unlink()
        for sub in ("entries", "locks"):  # only if nothing unproven is left in them
            with contextlib.suppress(OSError):
                (self.root / sub).rmdir()
        return len(entries)
