"""Keep stderr for what lepton-tune means to say; library chatter goes to ``--verbose`` / ``--debug``.

Without ``--verbose``: MLflow's and alembic's INFO lines (``Creating initial MLflow database
tables...``) and Optuna's per-trial INFO lines are not printed; warnings raised in a library's own
code (deprecations above all) are logged at DEBUG on ``lepton_tune.warnings`` instead of printed;
a warning lepton-tune raises is one line, ``lepton-tune: warning: ...``. Child processes (trial
processes, shards, the MLflow server) inherit the same choice through the environment.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["route_library_noise"]

_PACKAGE = str(Path(__file__).resolve().parent.parent)
_LIBRARY_LOGGERS = ("mlflow", "alembic", "huey", "optuna", "urllib3", "git")
_QUIET_CATEGORIES = ("DeprecationWarning", "PendingDeprecationWarning", "FutureWarning", "ExperimentalWarning")
_LOG = logging.getLogger("lepton_tune.warnings")


def _ours(category: type[Warning], filename: str) -> bool:
    if any(cls.__name__ in _QUIET_CATEGORIES for cls in category.__mro__):
        return False  # lepton-tune deprecates nothing: such a warning is a library's
    try:
        return str(Path(filename).resolve()).startswith(_PACKAGE)
    except (OSError, ValueError):
        return False


def _show(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    text = str(message).strip()
    if not _ours(category, filename):
        _LOG.debug("%s:%s: %s: %s", filename, lineno, category.__name__, text)
        return
    stream = file if file is not None else sys.stderr
    try:
        stream.write(f"lepton-tune: warning: {' '.join(text.split())}\n")
    except (OSError, ValueError):
        pass


def route_library_noise(*, verbose: bool) -> Callable[[], None]:
    """Quiet third-party logging and warnings unless ``verbose`` (``--verbose`` or ``--debug``).

    Returns a function that puts the environment and ``warnings.showwarning`` back (for a
    ``main()`` called inside another program); logger levels stay.

    Example:
        >>> # in main(): restore = route_library_noise(verbose=args.verbose or args.debug)
    """
    if verbose:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        return lambda: None
    saved = {key: os.environ.get(key) for key in ("MLFLOW_LOGGING_LEVEL", "PYTHONWARNINGS")}
    shown = warnings.showwarning
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", "WARNING")  # read by MLflow at import, here and in children
    os.environ.setdefault("PYTHONWARNINGS", ",".join(f"ignore::{name}" for name in _QUIET_CATEGORIES[:3]))
    for name in _LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        if logger.level == logging.NOTSET or logger.level < logging.WARNING:
            logger.setLevel(logging.WARNING)
    if "optuna" in sys.modules:  # optuna resets its logger to INFO when first imported; search sets it again
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.showwarning = _show

    def restore() -> None:
        warnings.showwarning = shown
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

    return restore
