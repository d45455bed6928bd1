"""One password redaction for everything lepton-tune prints, logs or sends to MLflow."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

# The password runs to the last "@" of the URL (greedy), so one typed with a raw "@", ":" or "/" is
# hidden whole; quotes and whitespace end a URL inside a message.
_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s'\"]*:)(?P<pw>[^\s'\"]*)(?P<tail>@)")


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text`` with ``***``.

    Example:
        >>> redact_url("postgresql+psycopg2://bob:s3cret@db:5432/optuna")
        'postgresql+psycopg2://bob:***@db:5432/optuna'
    """
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)
