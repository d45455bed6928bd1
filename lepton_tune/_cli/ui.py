"""`lepton-tune ui`: the MLflow UI for a run directory, on 127.0.0.1 only, with links that open each
study's runs table (every trial, sorted by the first objective), its Pareto front and its charts."""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from lepton_tune._cli._common import DEFAULT_RUN_DIR, err_console

if TYPE_CHECKING:
    from lepton_tune.tracking import StudyLinks

__all__ = ["add_parser", "run", "server_command"]


def add_parser(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "ui",
        help="start the MLflow UI for a run directory (127.0.0.1)",
        description="Start the MLflow UI on the run directory's own MLflow store; Ctrl-C, SIGTERM or SIGHUP stops it and every process it started.",
    )
    p.add_argument(
        "--run-dir", type=Path, default=None, help=f"run directory holding mlflow.db (default: ./{DEFAULT_RUN_DIR})"
    )
    p.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1 (default: 5000)")
    p.add_argument(
        "--study", default=None, help="print the links of this study only (default: every study in the store)"
    )
    p.add_argument(
        "--tracking-uri",
        default=None,
        help="MLflow store to show (default: $MLFLOW_TRACKING_URI, else the run directory's mlflow.db); "
        "an http(s) server is not started again: its links are printed",
    )
    p.add_argument(
        "--open", action="store_true", help="open the browser on the first study's runs table once the server answers"
    )
    p.set_defaults(handler=run)


def server_command(run_dir: Path, port: int, uri: str | None = None) -> list[str]:
    """The ``mlflow server`` command line for ``run_dir``: its store (``uri``, default its SQLite file)
    and artifact root."""
    from lepton_tune.tracking import default_tracking_uri

    return [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--backend-store-uri",
        uri or default_tracking_uri(run_dir),
        "--default-artifact-root",
        str((run_dir / "mlartifacts").resolve()),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


def _check(run_dir: Path, port: int, uri: str) -> None:
    from lepton_tune.exceptions import ConfigError, StorageError
    from lepton_tune.tracking import default_tracking_uri

    if not 0 < port < 65536:
        raise ConfigError(f"--port: must be between 1 and 65535, got {port}. Pass another --port.")
    if uri == default_tracking_uri(run_dir) and not (run_dir / "mlflow.db").is_file():
        raise StorageError(
            f"no MLflow store at {run_dir / 'mlflow.db'}; run 'lepton-tune search' first or pass the --run-dir it used"
        )
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            raise ConfigError(f"--port: {port} is already in use on 127.0.0.1. Pass another --port.") from None


def guarded(command: list[str]) -> list[str]:
    """``command`` run under the lifetime guard (``engine/_lifetime.py`` as a script: no torch import).

    The guard leads a process group of its own holding the MLflow server and the job consumers
    it starts; the group ends when the guard is told to stop, when its stdin (a pipe from this
    process) reaches EOF, or when this process dies (``PR_SET_PDEATHSIG``), even by SIGKILL.
    """
    import lepton_tune

    script = Path(lepton_tune.__file__).resolve().parent / "engine" / "_lifetime.py"
    return [sys.executable, "-P", str(script), "--guard", "--", *command]


def run(args: argparse.Namespace) -> int:
    from lepton_tune.exceptions import StorageError
    from lepton_tune.tracking import redact_url, resolve_tracking_uri

    run_dir = args.run_dir or DEFAULT_RUN_DIR
    uri = resolve_tracking_uri(getattr(args, "tracking_uri", None), run_dir)
    if uri.startswith(("http://", "https://")):  # a running MLflow server: its UI is already there
        print(f"MLflow UI (a running server): {redact_url(uri)}", flush=True)
        _print_links(run_dir, uri, getattr(args, "study", None), uri=uri)
        return 0
    _check(run_dir, args.port, uri)
    console = err_console()
    env = dict(os.environ, MLFLOW_DISABLE_TELEMETRY=os.environ.get("MLFLOW_DISABLE_TELEMETRY", "true"))
    address = f"http://127.0.0.1:{args.port}"
    print(
        f"MLflow UI for {run_dir if uri.endswith(str((run_dir / 'mlflow.db').resolve())) else redact_url(uri)}: "
        f"{address}",
        flush=True,
    )
    # the saved views are written (older stores) before the server opens the database
    links = _print_links(run_dir, address, getattr(args, "study", None), uri=uri)
    # own session: a terminal's Ctrl-C reaches us once, and we stop the server and its consumers together
    server = subprocess.Popen(
        guarded(server_command(run_dir, args.port, uri)), env=env, stdin=subprocess.PIPE, start_new_session=True
    )
    if getattr(args, "open", False) and links:
        threading.Thread(target=_open_when_up, args=(server, address, links[0].trials), daemon=True).start()
    console.print("Press Ctrl-C to stop it.")
    try:
        code = server.wait()
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM or SIGHUP: stop everything, free the port, exit 130/143/129
        _stop(server)
        _await_port(args.port)
        console.print("MLflow UI stopped.")
        raise
    if code != 0:
        raise StorageError(f"the MLflow server for {run_dir} exited with code {code}; see its output above")
    return 0


def _print_links(run_dir: Path, address: str, study: str | None, *, uri: str | None = None) -> list[StudyLinks]:
    """Print each study's links (every trial, the front, charts, parent run); a failure only warns."""
    from lepton_tune.tracking import TrackingWarning, default_tracking_uri, study_links

    try:
        links = study_links(uri or default_tracking_uri(run_dir), address, study=study)
    except Exception as exc:  # noqa: BLE001 - MLflow/SQLAlchemy errors vary; the UI still starts
        warnings.warn(
            f"could not read the studies in {run_dir / 'mlflow.db'}: {type(exc).__name__}: {exc}; "
            f"open {address} and pick the experiment by hand",
            TrackingWarning,
            stacklevel=2,
        )
        return []
    if not links and study is not None:
        print(f"  no lepton-tune study named {study!r} in {run_dir / 'mlflow.db'}", flush=True)
    for link in links:
        print(f"Study {link.study_name}:", flush=True)
        print(f"  every trial, sorted by {link.first_objective}: {link.trials}", flush=True)
        print(f'  Pareto front (tags.pareto = "true"): {link.front}', flush=True)
        print(f"  trade-off charts: {link.charts}", flush=True)
        print(f"  study summary (parent run): {link.parent}", flush=True)
    return links


def _open_when_up(server: subprocess.Popen[bytes], address: str, url: str, within: float = 120.0) -> None:
    """Open ``url`` in the default browser once ``address`` answers ``/health`` (the SPA needs the API)."""
    import urllib.request
    import webbrowser

    limit = time.monotonic() + within
    while time.monotonic() < limit and server.poll() is None:
        try:
            with urllib.request.urlopen(f"{address}/health", timeout=2) as response:
                if response.status == 200:
                    webbrowser.open(url)
                    return
        except OSError:
            time.sleep(0.5)


def _stop(server: subprocess.Popen[bytes]) -> None:
    """Close the guard's stdin (it ends its group), then signal the group if it lingers."""
    if server.stdin is not None:
        try:
            server.stdin.close()
        except OSError:
            pass
    for sig, wait in ((None, 5.0), (signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
        if sig is not None:
            try:
                os.killpg(server.pid, sig)
            except ProcessLookupError:
                return
        try:
            server.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue
        except KeyboardInterrupt:  # a second signal while stopping: go straight to the next step
            continue


def _await_port(port: int, within: float = 5.0) -> bool:
    """Wait until ``port`` on 127.0.0.1 can be bound again (the server's socket is gone)."""
    limit = time.monotonic() + within
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as a server binds: TIME_WAIT is free
            try:
                probe.bind(("127.0.0.1", port))
                return True
            except OSError:
                if time.monotonic() > limit:
                    return False
        time.sleep(0.1)
