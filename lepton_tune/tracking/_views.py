"""Saved views of the MLflow UI: the study's runs table and trade-off charts, ready when the UI opens.

MLflow 3.17's UI (read from its bundle, ``mlflow/server/js/build``) restores a *saved view* from
the experiment tag ``mlflow.sharedViewState.<key>`` when the runs page is opened with
``?viewStateShareKey=<key>``; the tag holds ``{"name", "createdAt", "updatedAt", "state"}`` where
``state`` is the JSON of the search facets (``searchFilter``, ``orderByKey``, ``orderByAsc``, ...)
and of the table/chart UI state (``selectedColumns``, ``runsHiddenMode``, ``compareRunCharts``,
``compareRunSections``, ...). The UI's own "Share" button writes the same tag. Three more facts
from that bundle shape the views:

- the runs table nests child runs under their parent (folded) only when it is sorted by start
  time with no filter; sorting by a metric lists every run flat, so each trial shows as a row;
- a URL that also carries a search facet (``searchFilter=`` ...) ignores the saved view, so the
  filter and sort live in the view, never in the URL;
- ``workflowType=machine_learning`` in the URL (and the experiment tag ``mlflow.experimentKind =
  custom_model_development``) opens the classic model-training pages, not the GenAI overview;
  ``compareRunsMode=CHART`` opens the chart view.
"""

from __future__ import annotations

import base64
import json
import time
import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple
from urllib.parse import urlencode

__all__ = [
    "EXPERIMENT_KIND",
    "FRONT_VIEW",
    "TRIALS_VIEW",
    "StudyViews",
    "experiment_tags",
    "run_url",
    "runs_url",
    "view_state",
]

#: the experiment kind of a model-training experiment (MLflow's ``ExperimentKind`` enum)
EXPERIMENT_KIND = ("mlflow.experimentKind", "custom_model_development")
#: saved-view keys (one experiment per study, so fixed keys never collide)
TRIALS_VIEW = "lepton-trials"
FRONT_VIEW = "lepton-front"
_VIEW_TAG = "mlflow.sharedViewState."
_MAX_TAG_VALUE = 20000  # MLflow's MAX_EXPERIMENT_TAG_VAL_LENGTH
_SECTION = "lepton-tradeoffs"
#: every trial's metrics shown next to the objectives (ratios against the naive baseline)
EXTRA_METRICS = ("accuracy_drop", "speedup", "memory_ratio")


class StudyViews(NamedTuple):
    """What a study's saved views show: objectives (in order) with directions, and searched params."""

    objectives: list[str]
    directions: list[str]
    params: list[str]


def _column(kind: str, key: str) -> str:
    return f"{kind}.`{key}`"


def _charts(objectives: Sequence[str]) -> list[dict[str, Any]]:
    """One scatter per later objective against the first (e.g. accuracy vs latency_p95_ms, vs memory_mb)."""
    first = objectives[0]
    return [
        {
            "uuid": f"lepton-scatter-{i}",
            "type": "SCATTER",
            "runsCountToCompare": 1000,
            "metricSectionId": _SECTION,
            "deleted": False,
            "isGenerated": False,
            "displayName": f"{first} vs {other}",
            "xaxis": {"key": other, "type": "METRIC"},
            "yaxis": {"key": first, "type": "METRIC"},
        }
        for i, other in enumerate(objectives[1:], start=1)
    ]


def view_state(views: StudyViews, *, search_filter: str) -> dict[str, Any]:
    """The UI state of one saved view: ``search_filter``, sorted by the first objective, our columns.

    Example:
        >>> state = view_state(StudyViews(["accuracy", "latency_p95_ms"], ["maximize", "minimize"], ["shards"]),
        ...                    search_filter='tags.pareto = "true"')
        >>> state["orderByKey"], state["orderByAsc"], state["selectedColumns"][0]
        ('metrics.`accuracy`', False, 'metrics.`accuracy`')
    """
    metrics = list(dict.fromkeys([*views.objectives, *EXTRA_METRICS]))
    columns = [_column("metrics", m) for m in metrics] + [_column("params", p) for p in views.params]
    columns += [_column("tags", "pareto"), _column("tags", "noisy")]
    first_up = bool(views.directions) and views.directions[0] == "minimize"
    state: dict[str, Any] = {
        "searchFilter": search_filter,
        "orderByKey": _column("metrics", views.objectives[0]) if views.objectives else "attributes.start_time",
        "orderByAsc": first_up,
        "selectedColumns": columns,
        # the run name says what the point is (``t12 resnet18 int8 ort K2x1 b8``): wide enough to read it
        "columnWidths": {_column("attributes", "Run Name"): 300},
        "columnOrder": [_column("attributes", "Run Name"), *columns],
        "runsHiddenMode": "SHOW_ALL",
        "hideEmptyCharts": True,
        "isAccordionReordered": False,
    }
    if len(views.objectives) > 1:
        state["compareRunCharts"] = _charts(views.objectives)
        state["compareRunSections"] = [
            {
                "uuid": _SECTION,
                "name": "Trade-offs (lepton-tune)",
                "display": True,
                "isReordered": False,
                "deleted": False,
                "isGenerated": False,
            }
        ]
    return state


def _tag_value(name: str, state: Mapping[str, Any], now_ms: int) -> str:
    text = json.dumps(state, separators=(",", ":"))
    envelope = {"name": name, "createdAt": now_ms, "updatedAt": now_ms, "state": text}
    value = json.dumps(envelope, separators=(",", ":"))
    if len(value) > _MAX_TAG_VALUE:  # the UI inflates "deflate;<base64 zlib>" (pako) as well
        envelope["state"] = "deflate;" + base64.b64encode(zlib.compress(text.encode())).decode()
        value = json.dumps(envelope, separators=(",", ":"))
    return value


def experiment_tags(views: StudyViews, *, now_ms: int | None = None) -> dict[str, str]:
    """Experiment tags that make the UI open our views: the experiment kind and two saved views.

    ``lepton-trials``: every trial (child runs only), sorted by the first objective, with the
    objectives, ``speedup``, ``memory_ratio`` and the searched params as columns and one scatter
    chart per trade-off. ``lepton-front``: the same, filtered to ``tags.pareto = "true"``.

    Example:
        >>> tags = experiment_tags(StudyViews(["accuracy"], ["maximize"], ["backbone"]), now_ms=0)
        >>> sorted(tags)
        ['mlflow.experimentKind', 'mlflow.sharedViewState.lepton-front', 'mlflow.sharedViewState.lepton-trials']
    """
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    trials = view_state(views, search_filter='tags.`lepton.role` = "trial"')
    front = view_state(views, search_filter='tags.pareto = "true"')
    return {
        EXPERIMENT_KIND[0]: EXPERIMENT_KIND[1],
        _VIEW_TAG + TRIALS_VIEW: _tag_value("lepton-tune: every trial", trials, now_ms),
        _VIEW_TAG + FRONT_VIEW: _tag_value("lepton-tune: Pareto front", front, now_ms),
    }


def runs_url(base_url: str, experiment_id: str, view: str | None = None, *, charts: bool = False) -> str:
    """The UI address of an experiment's runs page in the model-training view, with a saved view.

    Example:
        >>> runs_url("http://127.0.0.1:5000", "1", TRIALS_VIEW)
        'http://127.0.0.1:5000/#/experiments/1/runs?viewStateShareKey=lepton-trials&workflowType=machine_learning'
    """
    query: dict[str, str] = {}
    if view is not None:
        query["viewStateShareKey"] = view
    query["workflowType"] = "machine_learning"
    if charts:
        query["compareRunsMode"] = "CHART"
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs?{urlencode(query)}"


def run_url(base_url: str, experiment_id: str, run_id: str) -> str:
    """The UI address of one run's page (its description, metrics and artifacts).

    Example:
        >>> run_url("http://127.0.0.1:5000", "1", "abc")
        'http://127.0.0.1:5000/#/experiments/1/runs/abc?workflowType=machine_learning'
    """
    return f"{base_url.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}?workflowType=machine_learning"
