"""The serving lock across real processes: one holder per bundle digest, a server worker waits as a standby and
takes over when the holder exits, a library process only warns."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from lepton_tune.bundle._serving import SERVER_ENV, ServingLock

DIGEST = "ab" * 32
HOLD = f"""
import sys
from lepton_tune.bundle._serving import ServingLock
lock = ServingLock({DIGEST!r}, "bundle").acquire()
print("held" if lock.held else "not held", flush=True)
sys.stdin.read()  # hold until the test closes stdin
"""


def _start(tmp_path: Path, serving: bool) -> subprocess.Popen[str]:
    env = {**os.environ, "TMPDIR": str(tmp_path), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    env.pop(SERVER_ENV, None)
    if serving:
        env[SERVER_ENV] = "/some/bundle"
    return subprocess.Popen(
        [sys.executable, "-c", HOLD],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_second_server_worker_waits_as_standby_and_takes_over(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    owner = _start(tmp_path, serving=True)
    assert owner.stdout is not None and owner.stdout.readline().strip() == "held"
    standby = _start(tmp_path, serving=True)
    try:
        time.sleep(2.0)
        assert standby.poll() is None  # still waiting: no second engine
        monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
        with pytest.warns(
            UserWarning,
            match=rf"bundle: a server \(pid {owner.pid}\) already serves this bundle on "
            "this host; this process starts a second engine",
        ):
            assert not ServingLock(DIGEST, "bundle").acquire(serving=False).held  # a library load never waits
        owner.communicate("", timeout=30)  # the serving worker exits: its lock is released
        assert standby.stdout is not None and standby.stdout.readline().strip() == "held"
        _, err = standby.communicate("", timeout=30)
        assert f"another worker (pid {owner.pid}) already serves this bundle" in err
        assert "waits as a standby" in err and "--workers 1" in err
    finally:
        for proc in (owner, standby):
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=10)


def test_a_library_load_holds_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.delenv(SERVER_ENV, raising=False)
    first = ServingLock(DIGEST, "bundle").acquire()
    assert not first.held
    server = ServingLock(DIGEST, "bundle").acquire(serving=True)  # a server started later is not blocked
    assert server.held and server.path.read_text().strip() == str(os.getpid())
    server.release()


def test_a_standby_names_the_live_serving_worker_not_an_earlier_one(tmp_path: Path) -> None:
    """The serving worker writes its pid just after taking the lock: a standby reading in between sees an
    empty file or an earlier server's pid, and must wait for the live one."""
    import threading

    from lepton_tune.bundle._serving import _owner

    dead = subprocess.Popen(["true"])
    dead.wait()
    path = tmp_path / "x.lock"
    path.write_text(f"{dead.pid}\n")  # what an earlier server left
    writer = threading.Timer(0.3, lambda: path.write_text(f"{os.getpid()}\n"))
    writer.start()
    try:
        assert _owner(path) == str(os.getpid())
    finally:
        writer.join()
