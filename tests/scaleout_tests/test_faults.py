"""Faults under real ``lepton-tune search`` workers: a shard killed, a trial over its limit,
PostgreSQL restarted mid-study. Each ends with a study that is complete and consistent."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.scaleout_tests._pg import PgCluster
from tests.scaleout_tests.conftest import WorkerPool, engine_shards, wait_for, write_study

pytestmark = [pytest.mark.postgres, pytest.mark.slow]

FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)


def _group_gone(pid: int) -> bool:
    try:
        os.killpg(pid, 0)
    except ProcessLookupError:
        return True
    return False


def _study_if_created(url: str, name: str) -> optuna.Study | None:
    try:
        return optuna.load_study(study_name=name, storage=url)
    except KeyError:
        return None


def test_killed_shard_trial_completes_or_fails_with_its_reason(
    tmp_path: Path,
    pg_url: str,
    workers: WorkerPool,
) -> None:
    n_trials = 3
    study_file = write_study(
        tmp_path, "shard", n_trials=n_trials, protocol={"requests": 2000, "repeats": 2}
    )  # long enough to be hit mid-window
    worker = workers.start(study_file, pg_url)
    deadline = time.time() + 180
    while True:  # a shard may end (its trial done) between being found and being killed: try the next one
        shards = wait_for(lambda: engine_shards(worker.pid), max(1.0, deadline - time.time()), "engine shards", workers)
        time.sleep(0.3)
        try:
            os.kill(shards[0].pid, signal.SIGKILL)
            break
        except ProcessLookupError:
            assert time.time() < deadline, "no shard lived long enough to be killed"
    assert worker.wait(240) == 0, worker.stderr[-3000:]

    trials = optuna.load_study(study_name="shard", storage=pg_url).get_trials(deepcopy=False)
    assert len([t for t in trials if t.state in FINISHED]) >= n_trials
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]
    for t in trials:
        if t.state == TrialState.FAIL:
            assert t.user_attrs["lepton_status"] == "failed" and t.user_attrs["reason"], t.user_attrs
    assert wait_for(lambda: _group_gone(worker.pid), 20, "the worker's processes to exit", workers)


@pytest.mark.parametrize(
    ("limits", "reason"),
    [
        ({"trial_timeout_s": 2.0}, r"trial time limit \(limits\.trial_timeout_s\) exceeded"),
        ({"trial_memory_mb": 1.0}, r"trial memory limit \(limits\.trial_memory_mb = 1\) exceeded: \d+ MiB"),
    ],
    ids=["time", "memory"],
)
def test_trial_over_its_limit_is_failed_with_the_reason_and_study_goes_on(
    tmp_path: Path,
    pg_url: str,
    workers: WorkerPool,
    limits: dict[str, float],
    reason: str,
) -> None:
    study_file = write_study(
        tmp_path, "limits", n_trials=2, limits=limits, protocol={"requests": 5000, "repeats": 3}
    )  # far longer than the time limit
    worker = workers.start(study_file, pg_url)
    assert worker.wait(240) == 0, worker.stderr[-3000:]
    trials = optuna.load_study(study_name="limits", storage=pg_url).get_trials(deepcopy=False)
    assert len(trials) == 2  # the first failure did not stop the worker
    for t in trials:
        assert t.state == TrialState.FAIL
        assert t.user_attrs["lepton_status"] == "failed"
        assert re.search(reason, t.user_attrs["reason"]), t.user_attrs["reason"]
    assert wait_for(lambda: _group_gone(worker.pid), 20, "the stopped engines' processes to exit", workers)


def test_postgres_restart_mid_study_loses_no_completed_trial(
    tmp_path: Path,
    pg_cluster: PgCluster,
    pg_url: str,
    workers: WorkerPool,
) -> None:
    n_trials = 5
    # trials long enough (about a second each, warm) that one is measuring when the database goes away
    study_file = write_study(tmp_path, "outage", n_trials=n_trials, protocol={"requests": 1500, "repeats": 2})
    for _ in range(2):
        workers.start(study_file, pg_url)
    study = wait_for(lambda: _study_if_created(pg_url, "outage"), 120, "the workers to create the study", workers)

    def measuring_after_a_completed_trial() -> bool:
        done = study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
        return bool(done) and any(engine_shards(w.pid) for w in workers.workers)

    wait_for(measuring_after_a_completed_trial, 180, "a completed trial and a running one", workers)
    before = {t.number: t.values for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))}
    pg_cluster.stop_server()
    time.sleep(3)  # an outage longer than a heartbeat: every open connection is gone
    pg_cluster.start_server()

    witnesses = 0  # the worker whose engine ran through the outage sees it at least by its heartbeat
    for worker in workers.workers:
        code = worker.wait(240)
        err = worker.stderr
        assert pg_url.split("@")[0].split(":")[-1] not in err  # no password in anything it printed
        if code == 0 and "lost the Optuna storage" in err:  # it saw the outage, recovered, and said so
            assert "lost the Optuna storage postgresql+psycopg2://lepton:***@" in err, err[-3000:]
            assert "answers again after" in err, err[-3000:]
            witnesses += 1
        elif code == 0 and "already been failed and re-queued by the heartbeat check" in err:
            witnesses += 1  # its trial was failed and re-queued by the other worker's stale check meanwhile
        elif code != 0:  # stopping is allowed too, with one clear last line
            last = err.strip().splitlines()[-1]
            assert code == 1 and last.startswith("lepton-tune search: error:") and "storage" in last, err[-3000:]
            witnesses += 1
        # else: it touched no storage during the 3 s (e.g. logging to MLflow between two trials): nothing to say
    assert witnesses >= 1, [w.stderr[-1500:] for w in workers.workers]
    resumed = workers.start(study_file, pg_url)  # a later worker finishes the study
    assert resumed.wait(240) == 0, resumed.stderr[-3000:]

    trials = optuna.load_study(study_name="outage", storage=pg_url).get_trials(deepcopy=False)
    after = {t.number: t.values for t in trials if t.state == TrialState.COMPLETE}
    assert {n: after.get(n) for n in before} == before  # every completed trial is still there, unchanged
    assert len([t for t in trials if t.state in FINISHED]) >= n_trials
    assert not [t for t in trials if t.state == TrialState.RUNNING]
