"""The content-addressed model cache: one directory per key, atomic writes, checksums, file locks.

Layout under the root (``$LEPTON_TUNE_CACHE``, default ``~/.cache/lepton-tune``)::

    entries/<key>/weights.pt    a state dict (torch.save), loaded with weights_only=True
    entries/<key>/meta.json     what the entry is + the SHA-256 and size of weights.pt (written last)
    locks/<key>.lock            flock'ed while one process trains/converts that key
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

from lepton_tune.exceptions import CacheError

__all__ = ["ModelCache", "content_key"]

WEIGHTS = "weights.pt"
META = "meta.json"


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
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise CacheError(f"{path}: cannot create model cache directory ({exc}). Set LEPTON_TUNE_CACHE to a writable directory") from None

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
            full = {**meta, "key": key, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                    "size": weights.stat().st_size, "sha256": sha256_file(weights)}
            _atomic_write(entry / META, lambda fh: fh.write(json.dumps(full, indent=2, default=str).encode()))
        except OSError as exc:
            raise CacheError(f"{entry}: cannot write model cache entry ({exc}). Check free space and permissions") from None
        return entry

    def _discard(self, entry: Path, why: str) -> None:
        warnings.warn(f"{entry / WEIGHTS}: corrupt model cache entry ({why}); discarding it and rebuilding", stacklevel=3)
        shutil.rmtree(entry, ignore_errors=True)

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
            self._discard(entry, f"checksum mismatch: size {size} vs {meta.get('size')}, sha256 {digest[:12]} vs "
                                 f"{str(meta.get('sha256'))[:12]}")
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
        """Total bytes under the cache root."""
        if not self.root.is_dir():
            return 0
        return sum(p.stat().st_size for p in self.root.rglob("*") if p.is_file())

    def clear(self) -> int:
        """Remove every entry; return how many were removed."""
        count = len(list((self.root / "entries").glob("*"))) if (self.root / "entries").is_dir() else 0
        for sub in ("entries", "locks"):
            shutil.rmtree(self.root / sub, ignore_errors=True)
        return count
