"""The UI links of each lepton-tune study in an MLflow store (what ``lepton-tune ui`` prints).

A study tracked by this version already carries its saved views (the tracker sets them); a store
written by an older version gets them here, from what the store itself holds: the parent run's
``objectives``/``directions``/``searched_params`` tags, else the params that vary across trials.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from lepton_tune.tracking._views import (
    FRONT_VIEW,
    TRIALS_VIEW,
    StudyViews,
    experiment_tags,
    run_url,
    runs_url,
)

__all__ = ["StudyLinks", "study_links"]

_VIEW_TAG = "mlflow.sharedViewState."


class StudyLinks(NamedTuple):
    """UI addresses for one study: every trial, the front, the trade-off charts, the parent run."""

    study_name: str
    experiment_id: str
    first_objective: str
    trials: str
    front: str
    charts: str
    parent: str


def _all_runs(client: Any, experiment_id: str, filter_string: str) -> list[Any]:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], filter_string=filter_string, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def _views_from_store(client: Any, experiment_id: str, parent: Any) -> StudyViews:
    tags = parent.data.tags
    objectives = [o for o in tags.get("objectives", "").split(",") if o]
    directions = [d for d in tags.get("directions", "").split(",") if d]
    params = [p for p in tags.get("searched_params", "").split(",") if p]
    if not params:
        seen: dict[str, set[str]] = {}
        for run in _all_runs(client, experiment_id, "tags.`lepton.role` = 'trial'"):
            for key, value in run.data.params.items():
                seen.setdefault(key, set()).add(value)
        params = sorted(k for k, values in seen.items() if len(values) > 1)
    return StudyViews(objectives, directions, params)


def study_links(tracking_uri: str, base_url: str, *, study: str | None = None) -> list[StudyLinks]:
    """One :class:`StudyLinks` per lepton-tune study in the store (only ``study`` when given).

    Sets the experiment's saved views when they are missing (a store from an older lepton-tune).

    Example:
        >>> # for links in study_links("sqlite:///lepton-runs/mlflow.db", "http://127.0.0.1:5000"):
        >>> #     print(links.trials)
    """
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found: list[StudyLinks] = []
    for experiment in client.search_experiments():
        if study is not None and experiment.name != study:
            continue
        experiment_id = str(experiment.experiment_id)
        parents = client.search_runs(
            [experiment_id],
            filter_string="tags.`lepton.role` = 'study'",
            order_by=["attributes.start_time ASC"],
            max_results=1,
        )
        if not parents:
            continue
        parent = parents[0]
        views = _views_from_store(client, experiment_id, parent)
        if not all(f"{_VIEW_TAG}{key}" in experiment.tags for key in (TRIALS_VIEW, FRONT_VIEW)):
            for key, value in experiment_tags(views).items():
                client.set_experiment_tag(experiment_id, key, value)
        found.append(
            StudyLinks(
                study_name=experiment.name,
                experiment_id=experiment_id,
                first_objective=views.objectives[0] if views.objectives else "start time",
                trials=runs_url(base_url, experiment_id, TRIALS_VIEW),
                front=runs_url(base_url, experiment_id, FRONT_VIEW),
                charts=runs_url(base_url, experiment_id, TRIALS_VIEW, charts=True),
                parent=run_url(base_url, experiment_id, parent.info.run_id),
            )
        )
    return found
