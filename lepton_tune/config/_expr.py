"""Safe arithmetic/boolean expressions for search-space constraints.

User text is parsed with :mod:`ast` and walked node by node; only numbers, strings, booleans,
names, arithmetic, comparisons and ``and``/``or``/``not`` are accepted. Nothing is ever ``eval``-ed.
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Expression", "ExpressionError"]

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


def _check(node: ast.AST, names: set[str]) -> None:
    if isinstance(node, ast.Expression):
        _check(node.body, names)
    elif isinstance(node, ast.BoolOp):
        for value in node.values:
            _check(value, names)
    elif isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.Not, ast.USub, ast.UAdd)):
        _check(node.operand, names)
    elif isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        _check(node.left, names)
        _check(node.right, names)
    elif isinstance(node, ast.Compare) and all(type(op) in _CMPOPS for op in node.ops):
        _check(node.left, names)
        for comparator in node.comparators:
            _check(comparator, names)
    elif isinstance(node, ast.Name):
        names.add(node.id)
    elif isinstance(node, ast.Constant) and isinstance(node.value, (int, float, str, bool)):
        pass
    elif (
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == "train"
        and not node.attr.startswith("_")
    ):
        names.add(f"{node.value.id}.{node.attr}")  # train.epochs
    else:
        raise ExpressionError(f"'{ast.unparse(node)}' is not allowed (use numbers, names, + - * / // %, comparisons, and/or/not)")


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
        return -value if isinstance(node.op, ast.USub) else +value
    if isinstance(node, ast.BinOp):
        return _BINOPS[type(node.op)](_eval(node.left, env), _eval(node.right, env))
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
        try:
            tree = ast.parse(text.strip(), mode="eval")
        except SyntaxError as exc:
            raise ExpressionError(f"syntax error at column {exc.offset}: {exc.msg}") from None
        names: set[str] = set()
        _check(tree, names)
        return cls(text=text.strip(), names=frozenset(names), _tree=tree)

    def evaluate(self, env: Mapping[str, Any]) -> bool:
        """Evaluate against ``env`` (every name must be bound); division by zero is False."""
        try:
            return bool(_eval(self._tree, env))
        except ZeroDivisionError:
            return False
        except TypeError as exc:
            raise ExpressionError(f"'{self.text}': {exc}") from None
