"""The exceptions lepton-tune raises.

Every error derives from :class:`LeptonTuneError` and also from the builtin it refines, so callers
may catch either (``except ValueError`` still works for a bad config).
"""

from __future__ import annotations

__all__ = [
    "BundleError",
    "CacheError",
    "CacheRootError",
    "ConfigError",
    "DataError",
    "EngineError",
    "EngineInputError",
    "EngineLayoutError",
    "EngineTimeoutError",
    "HostBusyError",
    "HostMismatchError",
    "LeptonTuneError",
    "ModelError",
    "SelectionError",
    "ShardCrashedError",
    "StorageError",
    "error_from",
]


class LeptonTuneError(Exception):
    """Root of every error lepton-tune raises on purpose."""


class ConfigError(LeptonTuneError, ValueError):
    """A study, search-space or engine configuration breaks a rule.

    ``problems`` holds one line per problem; ``str(err)`` joins them.
    """

    def __init__(self, problems: list[str] | str) -> None:
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("\n".join(self.problems))


class HostMismatchError(LeptonTuneError, RuntimeError):
    """The study was recorded on a host with a different fingerprint."""


class HostBusyError(LeptonTuneError, RuntimeError):
    """Other processes kept the host busy through every re-measured window: nothing could be judged."""

    exit_code = 4


class EngineError(LeptonTuneError, RuntimeError):
    """The inference engine could not start or serve."""


class EngineLayoutError(EngineError):
    """The layout cannot be built for this model (e.g. no place to cut it into pipeline stages)."""


class ShardCrashedError(EngineError):
    """A shard died while holding a request, and the retry failed too."""


class EngineInputError(LeptonTuneError, ValueError):
    """A request does not match the engine's input shape or dtype."""


class EngineTimeoutError(EngineError, TimeoutError):
    """A request got no answer within the engine's request timeout."""


class DataError(LeptonTuneError, ValueError):
    """A dataset is missing, empty or unreadable."""


class ModelError(LeptonTuneError, ValueError):
    """A backbone, user model or precision conversion cannot be built."""


class CacheError(LeptonTuneError, RuntimeError):
    """The model cache cannot be read or written."""


class CacheRootError(CacheError, ValueError):
    """The cache directory given is not one lepton-tune created (bad input: nothing is deleted)."""


class StorageError(LeptonTuneError, RuntimeError):
    """The Optuna storage cannot be reached or holds something unexpected."""


class BundleError(LeptonTuneError, ValueError):
    """A production bundle is missing a file, tampered with, or from a newer format."""


class SelectionError(LeptonTuneError, ValueError):
    """No study trial meets the limits given to ``export``."""


def error_from(type_name: str, message: str) -> LeptonTuneError:
    """Rebuild an error that crossed a process boundary as (class name, message).

    A trial process sends its exception's class name and message, not a pickled exception (a
    user model's exception class may not import in the parent); the parent gets back the
    :class:`LeptonTuneError` subclass of that name, or an :class:`EngineError` for anything else
    (a ``RuntimeError`` raised by torch inside the engine is an engine failure to the search).
    """
    cls = globals().get(type_name)
    if isinstance(cls, type) and issubclass(cls, LeptonTuneError) and type_name in __all__:
        if cls is ConfigError:
            return ConfigError(message)
        try:
            return cls(message)
        except TypeError:  # a subclass with another constructor
            pass
    return EngineError(f"{type_name}: {message}" if message else type_name)
