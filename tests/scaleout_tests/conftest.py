"""Scale-out fixtures: one throwaway PostgreSQL cluster per session, a fresh database per test,
tiny study files, and ``lepton-tune search`` worker processes that are always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import psutil
import pytest
import yaml

from tests.scaleout_tests._pg import PgCluster, PgUnavailable, acquire, release

REPO = Path(__file__).resolve().parents[2]
T = TypeVar("T")


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """A PostgreSQL cluster on 127.0.0.1 (installed with apt-get when missing), stopped at the end."""
    try:
        cluster = acquire()
    except PgUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield cluster
    finally:
        release()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """``postgresql+psycopg2://lepton:<password>@127.0.0.1:PORT/<fresh db>``."""
    return pg_cluster.create_database()


def write_study(directory: Path, name: str, *, n_trials: int, **overrides: Any) -> Path:
    """A tiny, fast study: small_cnn trained 1 epoch on 16x16 digits, 20 measured requests.

    Heartbeat every second and a 3 s grace period, so a killed worker's trial is retried quickly.
    """
    doc: dict[str, Any] = {
        "name": name,
        "dataset": {"kind": "digits", "image_size": 16, "channels": 3},
        "train": {"epochs": 1, "batch_size": 64, "seed": 0},
        "search_space": {
            "params": {
                "backbone": "small_cnn",
                "precision": "fp32",
                "device": "cpu",
                "shards": {"low": 1, "high": 2},
                "batch_size": {"choices": [1, 2, 4, 8]},
                "max_wait_ms": {"choices": [0.0, 1.0, 2.0]},
            }
        },
        "objectives": ["accuracy", "latency_p95_ms"],
        "sampler": {"name": "random"},  # no seed: seeded workers would all draw the same points
        "baseline": False,
        "n_trials": n_trials,
        "protocol": {
            "warmup": 2,
            "requests": 20,
            "repeats": 1,
            "concurrency": 2,
            "probe_requests": 0,
            "accuracy_samples": 64,
            "noise_threshold": 4.0,
        },  # parallel workers train while one measures
        "storage": {"heartbeat_interval": 1, "grace_period": 3, "max_retry": 2},
        "tracking": {"enabled": True},
    }
    for key, value in overrides.items():
        doc[key] = {**doc[key], **value} if isinstance(value, dict) and isinstance(doc.get(key), dict) else value
    path = directory / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class Worker:
    """One ``lepton-tune search`` process in its own process group; output goes to files."""

    def __init__(self, index: int, args: list[str], log_dir: Path, env: dict[str, str]) -> None:
        self.index = index
        self.out_path = log_dir / f"worker-{index}.out"
        self.err_path = log_dir / f"worker-{index}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "lepton_tune", "search", *args],
                cwd=log_dir,
                env=env,
                stdout=out,
                stderr=err,
                start_new_session=True,
            )
        self.pid = self.proc.pid

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"worker {self.index} still running after {timeout} s; stderr:\n{self.stderr[-3000:]}")

    def kill_group(self) -> None:
        """SIGKILL the worker and whatever it started (its shards), if still there."""
        try:
            os.killpg(self.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            pass


class WorkerPool:
    """Start workers on one study; every process group is killed at teardown, whatever happened."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        self.workers: list[Worker] = []
        self.env = {
            **os.environ,
            "MLFLOW_DISABLE_TELEMETRY": "true",
            "DO_NOT_TRACK": "1",
            "PYTHONPATH": str(REPO),
            "LEPTON_TUNE_LOCK": str(tmp_path / "measure.lock"),
            "PYTHONUNBUFFERED": "1",
        }

    def start(self, study: Path, storage: str, *, tracking_uri: str | None = None, extra: list[str] = ()) -> Worker:
        args = [
            str(study),
            "--storage",
            storage,
            "--run-dir",
            str(self.dir / "run"),
            "--quiet",
            "--no-report",
            *(["--tracking-uri", tracking_uri] if tracking_uri else ["--no-tracking"]),
            *extra,
        ]
        worker = Worker(len(self.workers), args, self.dir, self.env)
        self.workers.append(worker)
        return worker

    def wait_all(self, timeout: float) -> list[int]:
        deadline = time.monotonic() + timeout
        return [w.wait(max(1.0, deadline - time.monotonic())) for w in self.workers]

    def close(self) -> None:
        for worker in self.workers:
            worker.kill_group()


def wait_for(predicate: Callable[[], T | None], timeout: float, what: str, pool: WorkerPool) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with the workers' stderr if never."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = predicate()
        if found:
            return found
        time.sleep(0.2)
    pytest.fail(
        f"timed out after {timeout} s waiting for {what}:\n" + "\n".join(w.stderr[-1500:] for w in pool.workers)
    )


def engine_shards(pid: int) -> list[psutil.Process]:
    """The engine's shard processes under worker ``pid``: the children of a forkserver that is not the
    worker's own.

    Cold trials: worker -> its forkserver -> trial process -> the trial's forkserver -> shards.
    Warm trials (``protocol.warm``): worker -> zygote -> the shards' forkserver -> shards, the trial
    processes being the zygote's children. Either way the shards are the children of a forkserver
    that is not a direct child of the worker; they exist only mid-trial.
    """
    try:
        worker = psutil.Process(pid)
        direct = {c.pid for c in worker.children()}
        servers = [
            p for p in worker.children(recursive=True) if p.pid not in direct and "forkserver" in " ".join(p.cmdline())
        ]
        shards = [child for server in servers for child in server.children()]
        return [shard for shard in shards if shard.status() != psutil.STATUS_ZOMBIE]
    except psutil.Error:  # the worker, a forkserver or a shard is gone
        return []


@pytest.fixture
def workers(tmp_path: Path) -> Iterator[WorkerPool]:
    pool = WorkerPool(tmp_path)
    try:
        yield pool
    finally:
        pool.close()
