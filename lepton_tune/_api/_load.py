"""``lepton_tune.load_study``: an earlier search's study as a :class:`SearchResult`."""

from __future__ import annotations

import os
from pathlib import Path

from lepton_tune._api._result import SearchResult
from lepton_tune._api._search import DEFAULT_RUN_DIR, location_options
from lepton_tune.tuning import load_existing_study, resolve_storage_url

__all__ = ["load_study"]


def load_study(
    study_name: str | None = None, *, run_dir: str | os.PathLike[str] | None = None, storage: str | None = None
) -> SearchResult:
    """Open a study a search wrote, to read its front, select, export or report (nothing is measured).

    Args:
        study_name: the study in the storage (default: the only one there).
        run_dir: the run directory holding study.db (default ``./lepton-runs``).
        storage: an Optuna storage URL instead of the run directory's SQLite file.

    Raises:
        StorageError: no study there, or several and no ``study_name``.

    Example:
        >>> import lepton_tune as lt
        >>> # result = lt.load_study(run_dir="lepton-runs"); result.picks[0].label
    """
    where = Path(run_dir) if run_dir is not None else DEFAULT_RUN_DIR
    url = resolve_storage_url(storage, where)
    study = load_existing_study(url, study_name)
    location = location_options(storage, study_name, study.study_name, where)
    return SearchResult(study, url, where, location=location, storage_given=storage is not None)
