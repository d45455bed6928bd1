"""One password redaction for everything lepton-tune prints, logs, stores or sends to MLflow.

Covered forms: ``scheme://user:password@host`` (a password holding ``@``, ``:`` or ``/`` is hidden
whole), query parameters (``?password=...``, ``&sslpassword=...``) and libpq keyword strings
(``host=db password=secret``, ``password='with spaces'``, ``password="..."``).
"""

from __future__ import annotations

import re
from typing import Any

__all__ = ["redact_data", "redact_url"]

# The password runs to the last "@" of the URL (greedy), so one typed with a raw "@", ":" or "/" is
# hidden whole; quotes and whitespace end a URL inside a message.
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)(?P<pw>[^\s'\"]*)(?P<tail>@)")
# key=value forms: URL query parameters and libpq connection strings (quoted values may hold spaces).
_KEYWORD = re.compile(
    r"(?P<key>\b(?:password|passwd|pwd|sslpassword|secret|token|api_key)\s*=\s*)"
    r"(?P<value>'(?:[^'\\]|\\.)*'?|\"(?:[^\"\\]|\\.)*\"?|[^\s&;'\"]*)",
    re.IGNORECASE,
)


def redact_url(text: str) -> str:
    """Replace every password in ``text`` (URL userinfo, ``password=`` parameters) with ``***``.

    Example:
        >>> redact_url("postgresql+psycopg2://bob:s3cret@db:5432/optuna")
        'postgresql+psycopg2://bob:***@db:5432/optuna'
        >>> redact_url("postgresql://db/optuna?user=bob&password=s3cret&sslmode=require")
        'postgresql://db/optuna?user=bob&password=***&sslmode=require'
        >>> redact_url("host=db user=bob password='p@ss word' dbname=optuna")
        'host=db user=bob password=*** dbname=optuna'
    """
    text = _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)
    return _KEYWORD.sub(lambda m: f"{m['key']}***", text)


def redact_data(value: Any) -> Any:
    """``value`` (JSON-like: dicts, lists, strings) with :func:`redact_url` applied to every string.

    Example:
        >>> redact_data({"storage": {"url": "postgresql://u:pw@h/db"}, "n": [1, "password=x"]})
        {'storage': {'url': 'postgresql://u:***@h/db'}, 'n': [1, 'password=***']}
    """
    if isinstance(value, str):
        return redact_url(value)
    if isinstance(value, dict):
        return {k: redact_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact_data(v) for v in value]
    return value
