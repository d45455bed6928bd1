"""Worker processes for the storage tests: ``python -m tests.scaleout_tests._workers CMD ...``.

Real processes (not threads) so that races on schema creation and SIGKILL behave as in production.
Each command prints one JSON line on stdout.

- ``create URL NAME START_AT``: wait until the wall clock reaches ``START_AT``, then
  ``create_or_load_study``; prints ``{"study_id": ...}`` or ``{"error": ..., "message": ...}``.
- ``optimize URL NAME N_TRIALS LOG [--hang]``: run ``N_TRIALS`` trials of a plain objective
  (no engine) with heartbeat every second; each trial appends ``{"number", "params", "pid"}`` to
  ``LOG`` when it starts. With ``--hang`` a trial sleeps until the process is killed.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any

HEARTBEAT_S = 1
GRACE_S = 2


def _create(url: str, name: str, start_at: float) -> dict[str, Any]:
    from lepton_tune.exceptions import StorageError
    from lepton_tune.tuning import create_or_load_study

    time.sleep(max(0.0, start_at - time.time()))
    try:
        study = create_or_load_study(url, name, ["minimize", "minimize"])
    except StorageError as exc:
        return {"error": "StorageError", "message": str(exc)}
    return {"study_id": study._study_id, "name": study.study_name}


def _optimize(url: str, name: str, n_trials: int, log: Path, hang: bool) -> dict[str, Any]:
    import optuna

    from lepton_tune.config import StorageSpec
    from lepton_tune.tuning import make_storage

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    storage = make_storage(url, StorageSpec(heartbeat_interval=HEARTBEAT_S, grace_period=GRACE_S, max_retry=2))
    study = optuna.load_study(study_name=name, storage=storage, sampler=optuna.samplers.RandomSampler())

    def objective(trial: optuna.Trial) -> tuple[float, float]:
        x = trial.suggest_float("x", -10.0, 10.0)
        y = trial.suggest_int("y", 0, 10**9)
        with open(log, "a") as handle:  # one short line per write: appends do not interleave
            handle.write(json.dumps({"number": trial.number, "params": trial.params, "pid": os.getpid()}) + "\n")
        if hang:
            time.sleep(3600)
        time.sleep(0.05)
        return x * x, float(y)

    study.optimize(objective, n_trials=n_trials)
    return {"done": n_trials}


def main(argv: list[str]) -> int:
    cmd, url, name = argv[0], argv[1], argv[2]
    if cmd == "create":
        out = _create(url, name, float(argv[3]))
    elif cmd == "optimize":
        out = _optimize(url, name, int(argv[3]), Path(argv[4]), "--hang" in argv)
    else:
        raise SystemExit(f"unknown command {cmd!r}")
    print(json.dumps(out), flush=True)
    return 0 if "error" not in out else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
