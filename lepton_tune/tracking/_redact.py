"""Default redaction: hide passwords in URLs before anything reaches MLflow or a warning."""

from __future__ import annotations

import re

__all__ = ["redact_url"]

_PASSWORD = re.compile(r"(?P<head>[a-zA-Z][\w+.-]*://[^:/@\s]*:)(?P<pw>[^@\s]*)(?P<tail>@)")


def redact_url(text: str) -> str:
    """Replace the password of every ``scheme://user:password@host`` in ``text`` with ``***``.

    Example:
        >>> redact_url("storage postgresql://bob:s3cret@db/optuna")
        'storage postgresql://bob:***@db/optuna'
    """
    return _PASSWORD.sub(lambda m: f"{m['head']}***{m['tail']}", text)
