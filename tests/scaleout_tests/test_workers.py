"""Real ``lepton-tune search`` workers on one PostgreSQL study: no lost, duplicated or stuck trials."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import optuna
import psutil
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lepton_tune.tracking import ensure_tracking_store
from tests.scaleout_tests.conftest import Worker, WorkerPool, engine_shards, wait_for, write_study

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _mlflow_runs(uri: str, experiment: str) -> list[object]:
    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None
    return list(client.search_runs([exp.experiment_id], max_results=1000))


def _table(trials: list[optuna.trial.FrozenTrial]) -> str:
    return "\n".join(
        f"{t.number} {t.state.name} {t.user_attrs.get('lepton_status')} {t.user_attrs.get('reason')}" for t in trials
    )


def _warnings(pool: WorkerPool) -> str:
    lines = [line for w in pool.workers for line in w.stderr.splitlines() if "Warning" in line or "error" in line]
    return "\n" + "\n".join(lines[-20:])


def test_three_workers_finish_the_study_with_one_child_run_per_trial(
    tmp_path: Path,
    pg_url: str,
    workers: WorkerPool,
) -> None:
    n_trials = 5
    study_file = write_study(tmp_path, "three", n_trials=n_trials)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_tracking_store(
        tracking, "three", tmp_path / "mlartifacts"
    )  # once, before the workers (docs/architecture.md, facts)
    for _ in range(3):
        workers.start(study_file, pg_url, tracking_uri=tracking)
    codes = workers.wait_all(timeout=240)
    assert codes == [0, 0, 0], "\n".join(w.stderr[-2000:] for w in workers.workers)

    study = optuna.load_study(study_name="three", storage=pg_url)
    trials = study.get_trials(deepcopy=False)
    table = _table(trials) + _warnings(workers)
    finished = [t for t in trials if t.state in FINISHED and t.user_attrs.get("confirms") is None]
    # each worker stops once n_trials have finished; trials already running then still finish
    assert n_trials <= len(finished) <= n_trials + 2, table
    confirmed = [t.user_attrs["confirms"] for t in trials if t.user_attrs.get("confirms") is not None]
    assert len(confirmed) == len(set(confirmed)), f"a pick confirmed twice by several workers:\n{table}"
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)], table
    assert sorted(t.number for t in trials) == list(range(len(trials)))
    for t in trials:
        assert t.user_attrs["point"]["backbone"] == "small_cnn"
        if t.state == TrialState.FAIL:  # an error is allowed (a loaded machine), but only with its reason
            assert t.user_attrs["lepton_status"] == "failed" and t.user_attrs["reason"], table
        else:
            assert t.user_attrs["lepton_status"] in ("ok", "infeasible"), table

    runs = _mlflow_runs(tracking, "three")
    children = [r for r in runs if r.data.tags.get("lepton.role") != "study"]
    parents = [r for r in runs if r.data.tags.get("lepton.role") == "study"]
    assert len(parents) == 1
    numbers = [int(r.data.tags["trial_number"]) for r in children]
    assert sorted(numbers) == sorted(t.number for t in trials), table  # one child per trial, none twice
    assert {r.data.tags.get("mlflow.parentRunId") for r in children} == {parents[0].info.run_id}
    assert not [r for r in runs if r.info.status == "RUNNING"]


def _measuring_worker(pool: WorkerPool) -> tuple[Worker, list[psutil.Process]] | None:
    """A live worker mid-measurement, with its shards: the same shards up 0.5 s apart.

    Shards are seen for a moment after a trial too (while they exit), when the worker holds no
    RUNNING trial; a second look tells the two apart (each trial measures for seconds).
    """
    for worker in pool.workers:
        if worker.proc.poll() is None:
            first = {p.pid for p in engine_shards(worker.pid)}
            if first:
                time.sleep(0.5)
                shards = [p for p in engine_shards(worker.pid) if p.pid in first]
                if shards:
                    return worker, shards
    return None


def test_killed_worker_trial_is_retried_and_study_completes(
    tmp_path: Path,
    pg_url: str,
    workers: WorkerPool,
) -> None:
    # enough trials, each long enough, that the survivor is still at work when the victim's heartbeat
    # goes stale (3 s grace) and its stale check fails and re-queues the killed trial
    n_trials = 6
    study_file = write_study(tmp_path, "kill", n_trials=n_trials, protocol={"requests": 1500, "repeats": 2})
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    ensure_tracking_store(tracking, "kill", tmp_path / "mlartifacts")
    for _ in range(2):
        workers.start(study_file, pg_url, tracking_uri=tracking)
    victim, shards = wait_for(lambda: _measuring_worker(workers), 180, "a worker measuring a trial", workers)
    running = optuna.load_study(study_name="kill", storage=pg_url).get_trials(states=(TrialState.RUNNING,))
    assert running, "a measuring worker holds a RUNNING trial"
    os.kill(victim.pid, signal.SIGKILL)
    assert victim.wait(10) == -signal.SIGKILL
    _, alive = psutil.wait_procs(shards, timeout=20)
    assert not alive, f"shards outlived their killed worker: {[p.pid for p in alive]}"

    survivor = next(w for w in workers.workers if w is not victim)
    assert survivor.wait(240) == 0, survivor.stderr[-3000:]
    study = optuna.load_study(study_name="kill", storage=pg_url)
    trials = study.get_trials(deepcopy=False)
    assert len([t for t in trials if t.state in FINISHED]) >= n_trials
    table = _table(trials) + _warnings(workers)
    retried = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) is not None]
    assert len(retried) == 1, table  # the killed worker's trial, and only it, was failed by the heartbeat
    killed = trials[RetryHeartbeatStaleTrialCallback.retried_trial_number(retried[0])]
    # its record may say anything up to the kill (even "ok" if killed after measuring): the state decides
    assert killed.state == TrialState.FAIL, table
    assert retried[0].state in FINISHED and retried[0].params == killed.params, table
    for t in trials:
        if t.state == TrialState.FAIL and t is not killed:  # a loaded machine may fail others, with a reason
            assert t.user_attrs["lepton_status"] == "failed" and t.user_attrs["reason"], table
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]

    runs = _mlflow_runs(tracking, "kill")
    assert not [r for r in runs if r.info.status == "RUNNING"]
    logged = {int(r.data.tags["trial_number"]) for r in runs if "trial_number" in r.data.tags}
    assert logged >= {t.number for t in trials if t.state in FINISHED}
