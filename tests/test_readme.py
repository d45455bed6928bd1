"""The README's doctest examples run as written (in a scratch directory)."""

from __future__ import annotations

import doctest
import os
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _doctest_blocks() -> list[str]:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return [b for b in blocks if b.lstrip().startswith(">>>")]


def test_the_readme_has_doctest_examples() -> None:
    assert _doctest_blocks(), "the LeptonModel example must stay a doctest"


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(_doctest_blocks())))
def test_readme_example_runs(index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    parser = doctest.DocTestParser()
    test = parser.get_doctest(_doctest_blocks()[index], {}, f"README.md example {index + 1}", str(README), 0)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    runner.run(test)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} README example lines failed (output above)"
    assert os.listdir(tmp_path), "the example wrote its run directory and bundle here"
