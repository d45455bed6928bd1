from __future__ import annotations

import pytest

from lepton_tune.config import Expression, ExpressionError


def test_arithmetic_and_logic() -> None:
    expr = Expression.parse('mode == "replica" or shards > 1')
    assert expr.evaluate({"mode": "pipeline", "shards": 2})
    assert not expr.evaluate({"mode": "pipeline", "shards": 1})
    assert Expression.parse("train.epochs * 2 <= 10").evaluate({"train.epochs": 5})


@pytest.mark.parametrize("text", ["open('x')", "x.__class__", "[1, 2]", "lambda: 1", "a if b else c"])
def test_only_safe_forms(text: str) -> None:
    with pytest.raises(ExpressionError, match="is not allowed"):
        Expression.parse(text)


def test_syntax_error() -> None:
    with pytest.raises(ExpressionError, match="syntax error at column"):
        Expression.parse("shards <=")
