"""Turn YAML and pydantic failures into ConfigError lines that name file, key, rule and value."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from lepton_tune.config._yaml import MAX_YAML_BYTES, safe_load_yaml
from lepton_tune.exceptions import ConfigError

__all__ = ["format_validation_error", "key_path", "load_yaml", "short_value"]


def load_yaml(path: str | Path, *, what: str) -> Any:
    """Read ``path`` with ``yaml.safe_load``; missing or malformed files raise ConfigError.

    Example:
        >>> load_yaml("nope.yaml", what="study")  # doctest: +IGNORE_EXCEPTION_DETAIL
        Traceback (most recent call last):
        ConfigError: nope.yaml: study file does not exist. ...
    """
    path = Path(path)
    if not path.is_file():
        hint = "it is a directory" if path.is_dir() else "it does not exist"
        if path.exists():
            hint = "it is not a regular file"
        raise ConfigError(f"{path}: {what} file cannot be read: {hint}. Check the path.")
    try:
        with path.open("rb") as fh:
            blob = fh.read(MAX_YAML_BYTES + 1)
        text = blob.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: {what} file is not UTF-8 text (byte {exc.start}). Save it as UTF-8.") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {what} file cannot be read: {exc.strerror or exc}.") from None
    data = safe_load_yaml(text, str(path))
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys, got {type(data).__name__}.")
    return data


def key_path(parts: Iterable[Any]) -> str:
    """Join a pydantic location into the dotted key a user typed (``space.params.shards.high``)."""
    out: list[str] = []
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        else:
            out.append(("." if out else "") + str(part))
    return "".join(out) or "(top level)"


_REPR = reprlib.Repr()  # attributes, not keywords: Python 3.10 and 3.11 take no arguments here
_REPR.maxlevel, _REPR.maxdict, _REPR.maxlist, _REPR.maxtuple, _REPR.maxset = 3, 6, 6, 6, 6
_REPR.maxstring, _REPR.maxlong, _REPR.maxother = 60, 40, 60


def short_value(value: Any, limit: int = 60) -> str:
    """``repr(value)`` cut to ``limit`` characters, at bounded cost (reprlib never walks a whole structure)."""
    text = _REPR.repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fields_at(model: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the (nested) model at ``loc``, for did-you-mean suggestions."""
    current: Any = model
    for part in loc:
        fields = getattr(current, "model_fields", None)
        if fields is None or part not in fields:
            return []
        annotation = fields[part].annotation
        candidates = [annotation, *getattr(annotation, "__args__", ())]
        current = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)), None)
        if current is None:
            return []
    return list(getattr(current, "model_fields", {}))


def format_validation_error(
    exc: ValidationError, *, source: str, model: type[BaseModel], prefix: Sequence[Any] = ()
) -> list[str]:
    """One line per pydantic error: ``file: key.path: rule, got value. fix``."""
    lines = []
    for err in exc.errors(include_url=False):
        loc = [p for p in err["loc"] if not (isinstance(p, str) and p.startswith(("function-", "~")))]
        where = key_path([*prefix, *loc])
        kind = err["type"]
        if kind == "extra_forbidden":
            known = _fields_at(model, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" Did you mean '{close[0]}'?" if close else ""
            allowed = f" Known keys: {', '.join(known)}." if known and not close else ""
            lines.append(f"{source}: {where}: unknown key.{hint}{allowed}")
            continue
        msg = err["msg"]
        msg = msg.removeprefix("Value error, ")
        if kind == "value_error" and (not loc or "\n" in msg or _names_own_key(msg)):
            # Model-level checks word their own key paths: "params.shards: ..., got 8".
            base = key_path([*prefix, *loc]) + "." if (prefix or loc) else ""
            lines.extend(f"{source}: {base}{_end(line)}" for line in msg.splitlines())
            continue
        if kind == "missing":
            lines.append(f"{source}: {where}: required key is missing. Add it.")
        else:
            lines.append(f"{source}: {where}: {msg}, got {short_value(err.get('input'))}.")
    return lines


def _end(line: str) -> str:
    line = line.rstrip(".")
    return line if line.endswith("?") else line + "."


def _names_own_key(msg: str) -> bool:
    head = msg.split(":", 1)[0]
    return ":" in msg and " " not in head


def raise_problems(problems: list[str]) -> None:
    if problems:
        raise ConfigError(problems)
