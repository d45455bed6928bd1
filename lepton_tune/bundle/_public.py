"""What a shared bundle may say about where it came from: no secret, host, user name or home path.

A bundle is meant to be copied to other people and machines, so its manifest records the study's
storage only as its kind and database/file name (never the server host, user or password), the
dataset path relative to where the export ran (or its last component), and the host fingerprint
without the host name.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from lepton_tune._redact import redact_url

__all__ = ["public_dataset", "public_host", "public_storage"]

_URL = re.compile(r"^(?P<scheme>[a-zA-Z][\w+.-]*)://(?P<rest>.*)$")


def public_storage(url: str | None) -> str | None:
    """``url`` without host, port, user or password: scheme and database (or file) name only.

    Example:
        >>> public_storage("postgresql+psycopg2://bob:s3cret@db.internal:5432/optuna?sslmode=require")
        'postgresql+psycopg2:///optuna'
        >>> public_storage("sqlite:////home/bob/runs/study.db")
        'sqlite:///study.db'
    """
    if not url:
        return None
    match = _URL.match(url)
    if match is None:  # a journal file path
        return Path(url).name
    scheme, rest = match["scheme"], match["rest"]
    if scheme.startswith("sqlite") or scheme == "journal":
        return f"{scheme}:///{Path(rest.split('?', 1)[0]).name}"
    path = rest.split("?", 1)[0].split("/", 1)
    database = path[1] if len(path) > 1 else ""
    return redact_url(f"{scheme}:///{database}")


def public_dataset(spec: dict[str, Any]) -> dict[str, Any]:
    """The dataset section with its ``path`` relative to the current directory, or only its last component."""
    path = spec.get("path")
    if not path or not os.path.isabs(str(path)):
        return dict(spec)
    real, here = Path(os.path.realpath(str(path))), Path(os.path.realpath(os.getcwd()))
    relative = os.path.relpath(real, here) if real == here or here in real.parents else real.name
    return {**spec, "path": relative}


def public_host(host: dict[str, Any]) -> dict[str, Any]:
    """The host fingerprint without the host name (it identifies a machine, not what it measures)."""
    return {k: v for k, v in (host or {}).items() if k not in ("hostname", "node", "user")}
