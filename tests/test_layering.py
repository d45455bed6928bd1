"""The dependency rule of docs/architecture.md: the engine and config never pull in optuna, mlflow or plotly."""

from __future__ import annotations

import subprocess
import sys

import pytest

FORBIDDEN = ("optuna", "mlflow", "plotly")


@pytest.mark.parametrize("package", ["lepton_tune.engine", "lepton_tune.config"])
def test_light_packages_do_not_import_heavy_ones(package, repo):
    code = f"import sys, {package}; print(' '.join(m for m in {FORBIDDEN!r} if m in sys.modules))"
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=repo, capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == ""


# The package table of docs/architecture.md, as data: who may import whom inside lepton_tune
# (root modules: `exceptions`, `_redact` and `__version__` are shared by all; `cli.py` is the CLI).
ALLOWED = {
    "config": {"exceptions"},
    "data": {"config", "exceptions"},
    "engine": {"config", "exceptions"},
    "models": {"config", "data", "engine", "exceptions"},
    "measure": {"config", "data", "engine", "exceptions", "__version__"},
    "front": {"_redact"},
    "tuning": {"config", "data", "models", "engine", "measure", "front", "exceptions", "_redact", "__version__"},
    "tracking": {"config", "front", "exceptions", "_redact"},
    "report": {"front", "exceptions"},
    "bundle": {"config", "data", "models", "engine", "front", "exceptions", "_redact", "__version__"},
    "_api": {
        "config",
        "data",
        "models",
        "engine",
        "measure",
        "front",
        "tuning",
        "tracking",
        "report",
        "bundle",
        "exceptions",
        "_redact",
        "__version__",
    },
}
THIRD_PARTY_FORBIDDEN = {
    "config": {"optuna", "mlflow", "plotly", "torch"},
    "engine": {"optuna", "mlflow", "plotly"},
    "front": {"mlflow", "plotly", "torch"},
    "tuning": {"mlflow", "plotly"},
    "tracking": {"plotly"},
    "report": {"mlflow", "torch"},
}


def _imports(root):
    """(package, file, imported module) for every import statement in the package, at any depth."""
    import ast

    for path in sorted((root / "lepton_tune").rglob("*.py")):
        parts = path.relative_to(root / "lepton_tune").parts
        package = "_cli" if parts == ("cli.py",) else parts[0] if len(parts) > 1 else None
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                yield package, path.relative_to(root), name


def test_packages_import_only_what_the_table_allows(repo):
    wrong = set()
    for package, path, name in _imports(repo):
        parts = name.split(".")
        inside = package in ALLOWED and parts[0] == "lepton_tune" and len(parts) > 1 and parts[1] != package
        if inside and parts[1] not in ALLOWED[package]:
            wrong.add(f"{path}: imports {name} ({package} may import {sorted(ALLOWED[package])})")
        if parts[0] in THIRD_PARTY_FORBIDDEN.get(package, ()):
            wrong.add(f"{path}: imports {parts[0]} (never in {package})")
    assert not wrong, "\n".join(sorted(wrong))


def test_no_file_imports_another_packages_private_module(repo):
    wrong = set()
    for package, path, name in _imports(repo):
        parts = name.split(".")
        if parts[0] == "lepton_tune" and len(parts) > 2 and parts[1] != package and parts[2].startswith("_"):
            wrong.add(f"{path}: imports {name}; import it from lepton_tune.{parts[1]} (its __init__) instead")
    assert not wrong, "\n".join(sorted(wrong))
