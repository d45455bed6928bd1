"""SIGTERM and SIGHUP end a command the way Ctrl-C does: cleanup runs, the exit code names the signal.

The handlers raise :class:`Interrupted`, a ``KeyboardInterrupt``, so every path that already
handles Ctrl-C (Optuna failing the running trial, the trial process and shards being stopped,
the MLflow server being ended) handles them too. Exit code: 128 + the signal (130 SIGINT,
143 SIGTERM, 129 SIGHUP). A signal the command started with ignored (``nohup``) stays ignored.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

__all__ = ["Interrupted", "exit_code", "handle_stop_signals"]

_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Interrupted(KeyboardInterrupt):
    """Raised in the main thread when SIGTERM or SIGHUP arrives."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def handle_stop_signals() -> Callable[[], None]:
    """Make SIGTERM and SIGHUP raise :class:`Interrupted`; return a function that undoes it.

    Does nothing outside the main thread (Python delivers signals only there).

    Example:
        >>> restore = handle_stop_signals(); restore()
    """
    previous: dict[int, Any] = {}
    for sig in _STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current == signal.SIG_IGN:  # nohup: the user asked for the command to survive a hang-up
            continue
        try:
            signal.signal(sig, _raise)
        except ValueError:  # not the main thread
            continue
        previous[sig] = current

    def restore() -> None:
        for sig, handler in previous.items():
            try:
                signal.signal(sig, handler)
            except ValueError:
                pass

    return restore


def exit_code(exc: KeyboardInterrupt) -> int:
    """128 + the signal that ended the command (130 for Ctrl-C)."""
    return 128 + int(getattr(exc, "signum", signal.SIGINT))
