"""Storage: redaction, clear errors, safe concurrent creation, no lost trials, heartbeat retry.

Real storages only: SQLite files under ``tmp_path`` and a throwaway PostgreSQL cluster (see
``tests/scaleout_tests/_pg.py``); workers are real processes started with ``subprocess``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.storages import RetryHeartbeatStaleTrialCallback
from optuna.trial import TrialState

from lepton_tune.config import StorageSpec
from lepton_tune.exceptions import StorageError
from lepton_tune.tuning import (
    create_or_load_study,
    load_existing_study,
    make_storage,
    redact_url,
    resolve_storage_url,
)
from lepton_tune.tuning._storage import StorageWarning, storage_failure, wait_for_storage
from tests.scaleout_tests._pg import PASSWORD, USER, PgCluster, _free_port
from tests.scaleout_tests._workers import GRACE_S
from tests.scaleout_tests.conftest import pg_cluster, pg_url  # noqa: F401 - fixtures shared with scaleout_tests

REPO = Path(__file__).resolve().parents[2]
DIRECTIONS = ["minimize", "minimize"]


def _worker(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.scaleout_tests._workers", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _finish(proc: subprocess.Popen[str], timeout: float = 120) -> tuple[int, str, str]:
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"worker {proc.args} did not finish in {timeout} s:\n{err[-3000:]}")
    return proc.returncode, out, err


def _log_lines(path: Path) -> list[dict[str, object]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# -- redaction --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql+psycopg2://bob:s3cret@db:5432/optuna", "postgresql+psycopg2://bob:***@db:5432/optuna"),
        ("mysql://u:p%40ss@h/db and http://a:b@c/d", "mysql://u:***@h/db and http://a:***@c/d"),
        ("postgresql://u:p@ss@h:5432/db", "postgresql://u:***@h:5432/db"),  # '@' not %-encoded
        ("postgresql://u:pa:ss@h/db", "postgresql://u:***@h/db"),
        ("postgresql://u:pa/ss@h/db", "postgresql://u:***@h/db"),
        (
            """{'a': 'postgresql://u:p1@h/db', "b": "http://x:p2@z"}""",
            """{'a': 'postgresql://u:***@h/db', "b": "http://x:***@z"}""",
        ),
        ("postgresql://bob@db/optuna", "postgresql://bob@db/optuna"),
        ("sqlite:////tmp/x/study.db", "sqlite:////tmp/x/study.db"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
    ],
)
def test_redact_url_hides_every_password(text: str, expected: str) -> None:
    assert redact_url(text) == expected


def test_resolve_storage_url_defaults_to_sqlite_in_run_dir(tmp_path: Path) -> None:
    assert resolve_storage_url(None, tmp_path) == f"sqlite:///{tmp_path.resolve() / 'study.db'}"
    assert resolve_storage_url("x.journal", tmp_path) == "x.journal"


def _assert_redacted(exc: BaseException, secret: str) -> None:
    for text in (str(exc), repr(exc), *getattr(exc, "args", ())):
        assert secret not in str(text)
    # the driver's exception (which may hold the URL) is not chained into a printed traceback
    assert exc.__cause__ is None and (exc.__context__ is None or exc.__suppress_context__)


def test_unreachable_postgres_is_a_clear_redacted_storage_error() -> None:
    url = f"postgresql+psycopg2://{USER}:{PASSWORD}@127.0.0.1:{_free_port()}/nodb"
    started = time.monotonic()
    with pytest.raises(
        StorageError,
        match=r"cannot open the Optuna storage postgresql\+psycopg2://lepton:\*\*\*@127"
        r"\.0\.0\.1:\d+/nodb: .*(refused|could not connect)",
    ) as info:
        create_or_load_study(url, "s", DIRECTIONS)
    _assert_redacted(info.value, PASSWORD)
    assert time.monotonic() - started < 30  # a dead server is reported, not retried for minutes


def test_unparseable_url_is_redacted() -> None:
    with pytest.raises(StorageError, match=r"cannot open the Optuna storage .*u:\*\*\*@") as info:
        make_storage("postgresql+psycopg2://u:Hunter2-pw@127.0.0.1:notaport/db")
    _assert_redacted(info.value, "Hunter2-pw")


def test_missing_sqlite_directory_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open the Optuna storage sqlite:///"):
        make_storage(f"sqlite:///{tmp_path}/no/such/dir/study.db")


@pytest.mark.postgres
def test_wrong_password_is_redacted(pg_cluster: PgCluster, pg_url: str) -> None:  # noqa: F811
    wrong = "Wr0ng-pw-4242"
    url = pg_url.replace(f":{PASSWORD}@", f":{wrong}@")
    with pytest.raises(StorageError, match=r"lepton:\*\*\*@.*password authentication failed") as info:
        create_or_load_study(url, "s", DIRECTIONS)
    _assert_redacted(info.value, wrong)


@pytest.mark.postgres
def test_load_existing_study_errors_are_redacted(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(StorageError, match=r"study 'nope' not found in .*lepton:\*\*\*@.*it holds: none") as info:
        load_existing_study(pg_url, "nope")
    _assert_redacted(info.value, PASSWORD)
    create_or_load_study(pg_url, "a", DIRECTIONS)
    create_or_load_study(pg_url, "b", DIRECTIONS)
    with pytest.raises(StorageError, match=r"lepton:\*\*\*@.* holds 2 studies \(a, b\); pass --study-name") as info:
        load_existing_study(pg_url, None)
    _assert_redacted(info.value, PASSWORD)
    assert load_existing_study(pg_url, "b").study_name == "b"


@pytest.mark.postgres
def test_creation_giving_up_is_redacted(pg_url: str) -> None:  # noqa: F811
    with pytest.raises(
        StorageError,
        match=r"cannot create or load study 's' in .*lepton:\*\*\*@.* after 2 "
        r"attempts",
    ) as info:
        create_or_load_study(pg_url, "s", ["sideways"], attempts=2)
    _assert_redacted(info.value, PASSWORD)


def test_missing_study_database_says_what_to_run(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match=r"no study database at .*study\.db; run 'lepton-tune search' first"):
        load_existing_study(f"sqlite:///{tmp_path / 'study.db'}", None)


# -- heartbeat set-up -------------------------------------------------------------------------


def test_rdb_storage_gets_heartbeat_and_retry(tmp_path: Path) -> None:
    storage = make_storage(f"sqlite:///{tmp_path / 's.db'}", StorageSpec(heartbeat_interval=5, max_retry=3))
    assert isinstance(storage, optuna.storages.RDBStorage)
    assert storage.heartbeat_interval == 5
    assert storage.grace_period == 15  # default: three missed beats
    callback = storage.get_heartbeat_stale_trial_callback()
    assert isinstance(callback, RetryHeartbeatStaleTrialCallback)
    assert callback._max_retry == 3


def test_journal_path_gets_journal_storage(tmp_path: Path) -> None:
    storage = make_storage(str(tmp_path / "sub" / "s.journal"))
    assert isinstance(storage, optuna.storages.JournalStorage)
    assert (tmp_path / "sub").is_dir()


# -- concurrency with real processes ----------------------------------------------------------


def _create_from_four_processes(url: str) -> list[dict[str, object]]:
    start_at = time.time() + 8  # every worker has imported optuna and waits for the same instant
    procs = [_worker("create", url, "race", str(start_at)) for _ in range(4)]
    results = []
    for proc in procs:
        code, out, err = _finish(proc)
        assert code == 0, f"worker failed:\nstdout: {out}\nstderr: {err[-3000:]}"
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


@pytest.mark.postgres
def test_four_processes_create_one_study_on_fresh_postgres(pg_url: str) -> None:  # noqa: F811
    results = _create_from_four_processes(pg_url)
    assert {r["study_id"] for r in results} == {results[0]["study_id"]}
    summaries = optuna.get_all_study_summaries(pg_url)
    assert [s.study_name for s in summaries] == ["race"]


def test_four_processes_create_one_study_on_fresh_sqlite(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    results = _create_from_four_processes(url)
    assert {r["study_id"] for r in results} == {results[0]["study_id"]}
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == ["race"]


@pytest.mark.postgres
def test_three_workers_run_exactly_the_requested_trials(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    create_or_load_study(pg_url, "plain", DIRECTIONS)
    log = tmp_path / "trials.log"
    per_worker = 4
    procs = [_worker("optimize", pg_url, "plain", str(per_worker), str(log)) for _ in range(3)]
    for proc in procs:
        code, _, err = _finish(proc)
        assert code == 0, err[-3000:]
    trials = optuna.load_study(study_name="plain", storage=pg_url).get_trials(deepcopy=False)
    assert len(trials) == 3 * per_worker
    assert sorted(t.number for t in trials) == list(range(3 * per_worker))
    assert {t.state for t in trials} == {TrialState.COMPLETE}
    started = _log_lines(log)
    assert sorted(int(line["number"]) for line in started) == list(range(3 * per_worker))  # each ran once
    assert len({line["pid"] for line in started}) == 3
    assert len({(t.params["x"], t.params["y"]) for t in trials}) == 3 * per_worker


@pytest.mark.postgres
def test_killed_worker_trial_fails_and_is_retried_with_same_params(pg_url: str, tmp_path: Path) -> None:  # noqa: F811
    create_or_load_study(pg_url, "kill", DIRECTIONS)
    log = tmp_path / "trials.log"
    victim = _worker("optimize", pg_url, "kill", "1", str(log), "--hang")
    try:
        deadline = time.monotonic() + 60
        while not _log_lines(log):
            assert victim.poll() is None, victim.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "the worker never started its trial"
            time.sleep(0.1)
    finally:
        victim.send_signal(signal.SIGKILL)
        victim.communicate()
    killed = _log_lines(log)[0]
    study = optuna.load_study(study_name="kill", storage=pg_url)
    assert study.trials[killed["number"]].state == TrialState.RUNNING  # nobody told the storage

    time.sleep(GRACE_S + 1)  # its heartbeat is now stale
    code, _, err = _finish(_worker("optimize", pg_url, "kill", "1", str(log)))
    assert code == 0, err[-3000:]

    trials = study.get_trials(deepcopy=False)
    assert trials[killed["number"]].state == TrialState.FAIL
    retried = [t for t in trials if RetryHeartbeatStaleTrialCallback.retried_trial_number(t) == killed["number"]]
    assert len(retried) == 1
    assert retried[0].state == TrialState.COMPLETE
    assert retried[0].params == killed["params"]
    assert [line["params"] for line in _log_lines(log)] == [killed["params"], killed["params"]]
    assert not [t for t in trials if t.state in (TrialState.RUNNING, TrialState.WAITING)]


# -- outages ----------------------------------------------------------------------------------


def test_storage_failure_finds_the_driver_error_behind_optuna_errors() -> None:
    import sqlalchemy.exc

    driver = sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("connection refused"))
    try:
        try:
            try:
                raise driver
            except sqlalchemy.exc.OperationalError as exc:
                raise optuna.exceptions.StorageInternalError("commit failed") from exc
        except optuna.exceptions.StorageInternalError:
            raise UnboundLocalError("updated_state")  # noqa: B904 - what Optuna 5.0 raises while handling it
    except UnboundLocalError as outer:
        assert storage_failure(outer) is driver
    assert storage_failure(ValueError("a bug in an objective")) is None
    assert isinstance(
        storage_failure(optuna.exceptions.StorageInternalError("x")), optuna.exceptions.StorageInternalError
    )


def test_wait_for_storage_gives_up_with_a_clear_redacted_error() -> None:
    url = f"postgresql+psycopg2://{USER}:{PASSWORD}@127.0.0.1:{_free_port()}/db"
    lost = r"lost the Optuna storage .*lepton:\*\*\*@.*: boom\. Waiting up to 0 s"
    gave_up = (
        r"lepton:\*\*\*@.* has been unreachable for \d+ s \(.*\); this worker stops\. Completed trials are "
        r"safe .* run the same command again"
    )
    with pytest.warns(StorageWarning, match=lost), pytest.raises(StorageError, match=gave_up) as info:
        wait_for_storage(url, RuntimeError("boom"), limit_s=0, poll_s=0.01)
    _assert_redacted(info.value, PASSWORD)


def test_wait_for_storage_returns_once_it_answers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    with pytest.warns(StorageWarning) as record:
        assert wait_for_storage(url, RuntimeError("blip"), limit_s=5) < 5
    assert [str(w.message).split(":")[0] for w in record] == [
        "lost the Optuna storage sqlite",
        "the Optuna storage sqlite",
    ]
    assert re.search(r"answers again after \d+ s; the study goes on$", str(record[1].message))
