"""A throwaway PostgreSQL cluster for tests: 127.0.0.1 only, a password-protected role, removed after.

One cluster serves the whole pytest session (the fixtures in ``tests/scaleout_tests/conftest.py``
and ``tests/tuning_tests/test_storage.py`` share it through :func:`acquire` / :func:`release`);
each test gets its own fresh database from :meth:`PgCluster.create_database`.
"""

from __future__ import annotations

import atexit
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import threading
import uuid
from pathlib import Path

__all__ = ["PASSWORD", "USER", "PgCluster", "PgUnavailable", "acquire", "find_pg_bin", "release"]

USER = "lepton"
PASSWORD = "pg-S3cret-7xq"  # unique enough that a leak in any message is easy to grep for


class PgUnavailable(RuntimeError):
    """PostgreSQL cannot be installed or started here; the tests that need it skip with this reason."""


def find_pg_bin() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl`` (Debian keeps them off PATH)."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(os.path.realpath(found)).parent
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0,
    )
    return Path(versions[-1]).parent if versions else None


def _install() -> Path:
    if shutil.which("apt-get") is None:
        raise PgUnavailable("PostgreSQL (initdb/pg_ctl) is not installed and apt-get is unavailable to install it")
    if os.geteuid() != 0:
        raise PgUnavailable("PostgreSQL is not installed; run 'apt-get install -y postgresql' as root")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "postgresql"]
    result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:  # the package lists may be missing on a fresh image
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600, check=False)
        result = subprocess.run(install, env=env, capture_output=True, text=True, timeout=600, check=False)
    pg_bin = find_pg_bin()
    if result.returncode != 0 or pg_bin is None:
        tail = (result.stderr or result.stdout).strip().splitlines()[-1:] or ["no output"]
        raise PgUnavailable(f"apt-get install postgresql failed: {tail[0]}")
    return pg_bin


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PgCluster:
    """initdb + pg_ctl in a temp dir, as the ``postgres`` user when run as root."""

    def __init__(self, pg_bin: Path) -> None:
        self.pg_bin = pg_bin
        self.root = Path(tempfile.mkdtemp(prefix="lepton-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = _free_port()
        self.started = False
        self._as_postgres = os.geteuid() == 0

    # -- running the server's tools ---------------------------------------------------------
    def _run(self, tool: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.pg_bin / tool), *args]
        if self._as_postgres:  # initdb and postgres refuse to run as root
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd=self.root, check=False)
        if result.returncode != 0:
            log = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise PgUnavailable(
                f"{tool} {' '.join(args)} failed ({result.returncode}): "
                f"{result.stderr.strip() or result.stdout.strip()}\n{log}"
            )
        return result

    def start(self) -> None:
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        pwfile = self.root / "pw"
        pwfile.write_text(PASSWORD + "\n")
        if self._as_postgres:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            USER,
            f"--pwfile={pwfile}",
            "--auth-host=scram-sha-256",
            "--auth-local=scram-sha-256",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        pwfile.unlink()
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                "\n# lepton-tune test cluster\n"
                "listen_addresses = '127.0.0.1'\n"
                f"port = {self.port}\n"
                f"unix_socket_directories = '{self.root}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
                "max_connections = 200\nshared_buffers = 32MB\n"
            )
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")
        self.started = True

    def restart(self) -> None:
        """Fast restart: every open connection is cut, as in a real outage."""
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "-m", "fast", "restart")

    def stop_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "60", "-m", "fast", "stop")

    def start_server(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "60", "start")

    def stop(self) -> None:
        """Stop the server (immediate if a fast stop hangs) and remove every file."""
        try:
            if self.started and (self.data / "postmaster.pid").exists():
                try:
                    self._run("pg_ctl", "-D", str(self.data), "-w", "-t", "30", "-m", "fast", "stop")
                except (PgUnavailable, subprocess.TimeoutExpired):
                    self._run("pg_ctl", "-D", str(self.data), "-w", "-m", "immediate", "stop")
        finally:
            self.started = False
            shutil.rmtree(self.root, ignore_errors=True)

    # -- databases --------------------------------------------------------------------------
    def url(self, database: str = "postgres", *, password: str = PASSWORD) -> str:
        return f"postgresql+psycopg2://{USER}:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self, prefix: str = "t") -> str:
        """A fresh, empty database; returns its SQLAlchemy URL."""
        import psycopg2

        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        conn = psycopg2.connect(host="127.0.0.1", port=self.port, user=USER, password=PASSWORD, dbname="postgres")
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute(f'CREATE DATABASE "{name}"')
        finally:
            conn.close()
        return self.url(name)


_lock = threading.Lock()
_cluster: PgCluster | None = None
_users = 0


def acquire() -> PgCluster:
    """The session's cluster, started on first use (installing PostgreSQL if missing).

    Raises:
        PgUnavailable: with the reason tests should skip for.
    """
    global _cluster, _users
    with _lock:
        if _cluster is None:
            pg_bin = find_pg_bin() or _install()
            cluster = PgCluster(pg_bin)
            try:
                cluster.start()
            except BaseException:
                cluster.stop()
                raise
            _cluster = cluster
            atexit.register(_stop_at_exit)
        _users += 1
        return _cluster


def release() -> None:
    """Drop one user; the last one stops the cluster and removes its files."""
    global _cluster, _users
    with _lock:
        _users -= 1
        if _users <= 0 and _cluster is not None:
            cluster, _cluster = _cluster, None
            _users = 0
            cluster.stop()


def _stop_at_exit() -> None:
    """Safety net when the session dies before fixture teardown (e.g. a second Ctrl-C)."""
    global _cluster
    if _cluster is not None:
        cluster, _cluster = _cluster, None
        cluster.stop()
