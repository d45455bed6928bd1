"""Safe arithmetic/boolean expressions for search-space constraints.

User text is parsed with :mod:`ast` and walked node by node; only numbers, strings, booleans,
names, arithmetic, comparisons and ``and``/``or``/``not`` are accepted. Nothing is ever ``eval``-ed.

Evaluation is cheap by construction: at most :data:`MAX_CHARS` characters and :data:`MAX_DEPTH`
levels of nesting; arithmetic takes numbers only (no ``"a" * 10**9``), and every intermediate value
must stay within :data:`MAX_MAGNITUDE` and finite, so no step builds a huge number.
"""

from __future__ import annotations

import ast
import math
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["MAX_CHARS", "MAX_DEPTH", "MAX_MAGNITUDE", "Expression", "ExpressionError"]

MAX_CHARS = 500
MAX_DEPTH = 32
MAX_MAGNITUDE = 2**63

_BINOPS = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
}
_CMPOPS = {
    ast.Lt: operator.lt,
    ast.LtE: operator.le,
    ast.Gt: operator.gt,
    ast.GtE: operator.ge,
    ast.Eq: operator.eq,
    ast.NotEq: operator.ne,
}


class ExpressionError(ValueError):
    """The text is not an allowed expression."""


def _number(value: Any) -> Any:
    """``value`` if it is a bounded finite number (bool counts as 0/1); ExpressionError otherwise."""
    if isinstance(value, bool) or (isinstance(value, int) and abs(value) <= MAX_MAGNITUDE):
        return value
    if isinstance(value, float) and math.isfinite(value) and abs(value) <= MAX_MAGNITUDE:
        return value
    if isinstance(value, (int, float)):
        raise ExpressionError(f"a value leaves the allowed range (finite, magnitude <= 2**63): {str(value)[:40]}")
    raise ExpressionError(f"arithmetic takes numbers only, got {type(value).__name__} {str(value)[:40]!r}")


def _check(node: ast.AST, names: set[str], depth: int = 0) -> None:
    if depth > MAX_DEPTH:
        raise ExpressionError(f"nested deeper than {MAX_DEPTH} levels; write a flatter expression")
    deeper = depth + 1
    if isinstance(node, ast.Expression):
        _check(node.body, names, deeper)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, names, deeper)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
        _check(node.operand, names, deeper)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left, names, deeper)
        _check(node.right, names, deeper)
    elif isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        _check(node.left, names, deeper)
        for comparator in node.comparators:
            _check(comparator, names, deeper)
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        _number(node.value)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (str, bool)):
        if isinstance(node.value, str) and len(node.value) > 100:
            raise ExpressionError("a string constant is longer than 100 characters")
    elif (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "train"
        and not node.attr.startswith("_")
    ):
        names.add(f"{node.value.id}.{node.attr}")  # train.epochs
    else:
        raise ExpressionError(
            f"'{ast.unparse(node)}' is not allowed (use numbers, names, + - * / // %, comparisons, and/or/not)"
        )


def _eval(node: ast.AST, env: Mapping[str, Any]) -> Any:
    if isinstance(node, ast.Expression):
        return _eval(node.body, env)
    if isinstance(node, ast.BoolOp):
        values = (_eval(v, env) for v in node.values)
        return all(values) if isinstance(node.op, ast.And) else any(values)
    if isinstance(node, ast.UnaryOp):
        value = _eval(node.operand, env)
        if isinstance(node.op, ast.Not):
            return not value
        value = _number(value)
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        return _number(_BINOPS[type(node.op)](_number(_eval(node.left, env)), _number(_eval(node.right, env))))
    if isinstance(node, ast.Compare):
        left = _eval(node.left, env)
        for op, comparator in zip(node.ops, node.comparators):
            right = _eval(comparator, env)
            if not _CMPOPS[type(op)](left, right):
                return False
            left = right
        return True
    if isinstance(node, ast.Name):
        return env[node.id]
    if isinstance(node, ast.Attribute):
        return env[f"{node.value.id}.{node.attr}"]  # type: ignore[attr-defined]
    return node.value  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Expression:
    """A parsed constraint such as ``shards * threads_per_shard <= cores``.

    Example:
        >>> e = Expression.parse("shards * threads_per_shard <= cores")
        >>> sorted(e.names)
        ['cores', 'shards', 'threads_per_shard']
        >>> e.evaluate({"shards": 2, "threads_per_shard": 1, "cores": 2})
        True
    """

    text: str
    names: frozenset[str] = field(compare=False)
    _tree: ast.Expression = field(compare=False, repr=False)

    @classmethod
    def parse(cls, text: str) -> Expression:
        """Parse ``text``; raise :class:`ExpressionError` if it is not an allowed expression."""
        if not isinstance(text, str):
            raise ExpressionError(f"must be a string expression, got {type(text).__name__}")
        if len(text) > MAX_CHARS:
            raise ExpressionError(
                f"{len(text)} characters, over the {MAX_CHARS}-character limit for one constraint; "
                "split it into several constraints"
            )
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
        except (RecursionError, MemoryError, ValueError) as exc:  # deep nesting, null bytes
            raise ExpressionError(f"cannot be parsed ({type(exc).__name__}); write a flatter expression") from None
        names: set[str] = set()
        _check(tree, names)
        return cls(text=text.strip(), names=frozenset(names), _tree=tree)

    def evaluate(self, env: Mapping[str, Any]) -> bool:
        """Evaluate against ``env`` (every name must be bound); division by zero is False."""
        try:
            return bool(_eval(self._tree, env))
        except ZeroDivisionError:
            return False
        except (TypeError, OverflowError) as exc:
            raise ExpressionError(f"'{self.text}': {exc}") from None
