"""The dependency rule of DESIGN.md: the engine and config never pull in optuna, mlflow or plotly."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("optuna", "mlflow", "plotly")


@pytest.mark.parametrize("package", ["lepton_tune.engine", "lepton_tune.config"])
def test_light_packages_do_not_import_heavy_ones(package, repo):
    code = f"import sys, {package}; print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""
