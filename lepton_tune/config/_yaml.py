"""YAML with limits: every study, search-space and bundle manifest file is read through here.

``yaml.safe_load`` builds no objects beyond plain data, but an alias (``*a``) is a reference, so a
few hundred bytes can stand for 10^9 nodes ("billion laughs"): harmless until something walks the
data (validation, ``json.dumps``, an error message). :func:`safe_load_yaml` refuses text longer
than :data:`MAX_YAML_BYTES`, nesting deeper than :data:`MAX_YAML_DEPTH` and documents whose
expanded size passes :data:`MAX_YAML_NODES`, walking at most that many nodes to find out.
"""

from __future__ import annotations

import math
from typing import Any

import yaml

from lepton_tune.exceptions import ConfigError

__all__ = ["MAX_YAML_BYTES", "MAX_YAML_DEPTH", "MAX_YAML_NODES", "safe_load_yaml"]

MAX_YAML_BYTES = 1 << 20
MAX_YAML_DEPTH = 64
MAX_YAML_NODES = 100_000


def _expanded_size(data: Any, source: str) -> None:
    """Walk ``data`` as if aliases were copies; stop (and refuse) past the node or depth limit."""
    stack: list[tuple[Any, int]] = [(data, 0)]
    seen = 0
    while stack:
        node, depth = stack.pop()
        seen += 1
        if seen > MAX_YAML_NODES:
            raise ConfigError(
                f"{source}: expands to more than {MAX_YAML_NODES} values (YAML aliases '*name' repeat "
                "what they point to). Write the values out, or use fewer aliases"
            )
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels. Flatten the document")
        if isinstance(node, dict):
            for key, value in node.items():
                stack.append((key, depth + 1))
                stack.append((value, depth + 1))
        elif isinstance(node, (list, tuple)):
            stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, float) and not math.isfinite(node):
            continue  # NaN / inf are refused where a number is validated, with the key named


def safe_load_yaml(text: str | bytes, source: str) -> Any:
    """Parse ``text`` with ``yaml.safe_load`` under the size, depth and expansion limits.

    Example:
        >>> safe_load_yaml("a: [1, 2]", "x.yaml")
        {'a': [1, 2]}
        >>> bomb = "a: &a [1,1,1,1,1,1,1,1,1,1]\\n" + "".join(
        ...     f"{c}: &{c} [*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p},*{p}]\\n" for p, c in zip("abcdefg", "bcdefgh"))
        >>> safe_load_yaml(bomb, "bomb.yaml")
        Traceback (most recent call last):
        ...
        lepton_tune.exceptions.ConfigError: bomb.yaml: expands to more than 100000 values ...

    Raises:
        ConfigError: too long, too deep, expands too far, or not YAML (with line and column).
    """
    if len(text) > MAX_YAML_BYTES:
        raise ConfigError(
            f"{source}: {len(text)} bytes, over the {MAX_YAML_BYTES // 1024} KiB limit for a "
            "configuration file. This is not a lepton-tune file, or it holds data that belongs elsewhere"
        )
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "unknown position"
        problem = str(exc.problem or exc)[:200]
        raise ConfigError(f"{source}: invalid YAML at {where}: {problem}. Fix the syntax there.") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: invalid YAML: {str(exc)[:200]}.") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested deeper than {MAX_YAML_DEPTH} levels. Flatten the document") from None
    _expanded_size(data, source)
    return data
