"""Tracking never kills the work it tracks: every MLflow call goes through :class:`TrackingGuard`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import TypeVar

__all__ = ["TrackingGuard", "TrackingWarning"]

T = TypeVar("T")


class TrackingWarning(UserWarning):
    """MLflow tracking failed; the study goes on (its trials stay in the Optuna storage)."""


class TrackingGuard:
    """Run MLflow calls; on any error warn once and return None instead of raising.

    After ``max_failures`` failures in a row the guard stops trying (a dead tracking server would
    otherwise stall every trial with HTTP retries); a success resets the count.

    Example:
        >>> guard = TrackingGuard("sqlite:///x.db")
        >>> guard.run("log trial 0", lambda: 1 / 0) is None
        True
    """

    def __init__(self, uri: str, *, redact: Callable[[str], str] = str, max_failures: int = 3) -> None:
        self.uri, self.redact, self.max_failures = uri, redact, max_failures
        self.failures = 0
        self.in_a_row = 0
        self.warned = False

    @property
    def disabled(self) -> bool:
        return self.in_a_row >= self.max_failures

    def run(self, what: str, call: Callable[[], T]) -> T | None:
        """``call()``, or None when it raised an ``Exception`` (KeyboardInterrupt still propagates)."""
        if self.disabled:
            return None
        try:
            result = call()
        except Exception as exc:  # noqa: BLE001 - MLflow, SQLAlchemy, HTTP, OS errors: tracking never raises
            self._failed(what, exc)
            return None
        self.in_a_row = 0
        return result

    def _failed(self, what: str, exc: Exception) -> None:
        self.failures += 1
        self.in_a_row += 1
        if self.warned:
            return
        self.warned = True
        lines = self.redact(str(exc)).strip().splitlines()
        detail = next((line for line in lines if "Error" in line), lines[0] if lines else "")
        warnings.warn(
            f"MLflow tracking failed to {what} at {self.redact(self.uri)}: {type(exc).__name__}: {detail[:300]}. "
            f"The study goes on and keeps every trial in its Optuna storage; tracking stops after "
            f"{self.max_failures} failures in a row (this warning is shown once).",
            TrackingWarning,
            stacklevel=3,
        )
