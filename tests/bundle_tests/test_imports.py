"""docs/architecture.md's rule for the bundle package: config, data, models, engine only; mlflow only inside the pyfunc side."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CODE = """
import sys
import lepton_tune
assert "torch" not in sys.modules, "import lepton_tune must stay light"
load = lepton_tune.load_bundle
from lepton_tune.bundle import load_bundle
assert load is load_bundle
print(" ".join(m for m in ("optuna", "mlflow", "plotly") if m in sys.modules))
"""


def test_bundle_imports_no_optuna_mlflow_plotly(repo: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CODE], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
