"""The running trial's heartbeat outlives a PostgreSQL outage (Optuna's own thread would die)."""

from __future__ import annotations

import time
import warnings

import optuna
import pytest
import sqlalchemy
from optuna.storages._heartbeat import get_heartbeat_thread

from lepton_tune.config import StorageSpec
from lepton_tune.tuning import StorageWarning, make_storage
from tests.scaleout_tests._pg import PgCluster

pytestmark = pytest.mark.postgres


def _last_beat(url: str, trial_id: int) -> float:
    storage = optuna.storages.RDBStorage(url)
    try:
        with storage.engine.connect() as conn:
            row = conn.execute(
                sqlalchemy.text("SELECT extract(epoch from heartbeat) FROM trial_heartbeats WHERE trial_id = :t"),
                {"t": trial_id},
            ).one()
        return float(row[0])
    finally:
        storage.engine.dispose()


@pytest.mark.filterwarnings("ignore:Heartbeat of storage is supposed to be used with Study.optimize")
def test_heartbeat_is_said_lost_then_resumes_after_the_server_restarts(pg_cluster: PgCluster, pg_url: str) -> None:
    storage = make_storage(pg_url, StorageSpec(heartbeat_interval=1, grace_period=3))
    study = optuna.create_study(storage=storage, study_name="beat")
    trial = study.ask()
    beat = get_heartbeat_thread(trial._trial_id, study._storage)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        beat.start()
        try:
            time.sleep(1.5)
            before = _last_beat(pg_url, trial._trial_id)
            pg_cluster.stop_server()
            time.sleep(3)
            pg_cluster.start_server()
            time.sleep(4)
            assert beat._thread is not None and beat._thread.is_alive()
        finally:
            beat.join()
    assert _last_beat(pg_url, trial._trial_id) - before >= 3  # it beat again after the 3 s outage
    texts = [str(w.message) for w in said if issubclass(w.category, StorageWarning)]
    assert any(t.startswith("lost the Optuna storage postgresql+psycopg2://lepton:***@") for t in texts), texts
    assert any("answers again after" in t and "heartbeats resume" in t for t in texts), texts
    assert not any(pg_url.split("@")[0].split(":")[-1] in t for t in texts)  # no password
