"""Subcommands of the ``lepton-tune`` CLI: each module has ``add_parser(sub)`` and ``run(args)``.

Importing this package turns MLflow's usage telemetry off for every command (and every process a
command starts), unless the user set ``MLFLOW_DISABLE_TELEMETRY`` themselves.
"""

from __future__ import annotations

import os

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
