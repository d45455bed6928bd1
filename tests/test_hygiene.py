"""Code hygiene that keeps the package readable: short functions, small modules, no stray references."""

from __future__ import annotations

import ast
from pathlib import Path

MAX_FUNCTION_LINES = 60  # statements after the docstring
MAX_MODULE_LINES = 400


def _functions(root: Path):
    for path in sorted((root / "lepton_tune").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = node.body
                docstring = isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant)
                first = body[1] if docstring and len(body) > 1 else body[0]
                yield path.relative_to(root), node.name, (node.end_lineno or first.lineno) - first.lineno + 1


def test_no_function_is_longer_than_60_lines(repo: Path) -> None:
    long = [f"{path}: {name} has {lines} lines" for path, name, lines in _functions(repo) if lines > MAX_FUNCTION_LINES]
    assert not long, "split these by job:\n" + "\n".join(long)


def test_no_module_is_longer_than_400_lines(repo: Path) -> None:
    big = [
        f"{p.relative_to(repo)}: {n} lines"
        for p in sorted((repo / "lepton_tune").rglob("*.py"))
        if (n := len(p.read_text().splitlines())) > MAX_MODULE_LINES
    ]
    assert not big, "\n".join(big)


def test_comments_cite_only_files_in_the_repository(repo: Path) -> None:
    outside = tuple(f"{name}.md" for name in ("DESIGN", "FACTS", "WAVE2", "STYLE"))  # notes outside the repository
    found = [
        f"{p.relative_to(repo)}: {name}"
        for folder in ("lepton_tune", "tests", "benchmarks", "docs")
        for p in sorted((repo / folder).rglob("*"))
        if p.suffix in (".py", ".md", ".yaml")
        for name in outside
        if name in p.read_text()
    ]
    assert not found, "cite docs/architecture.md instead:\n" + "\n".join(found)
