"""SearchSpaceSpec: what a study may vary, with derived constraints, resolved for one host."""

from __future__ import annotations

import difflib
import itertools
import math
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lepton_tune.config._engine import ENGINE_FIELDS, EngineConfig
from lepton_tune.config._errors import format_validation_error, load_yaml, short_value
from lepton_tune.config._expr import Expression, ExpressionError
from lepton_tune.config._host import HostFacts, host_facts
from lepton_tune.config._recipe import BACKBONES, TRAIN_FIELDS
from lepton_tune.exceptions import ConfigError

#: More constraints than this are refused: each one is evaluated for up to 200 000 combinations.
MAX_CONSTRAINTS = 64

__all__ = ["SEARCHABLE", "ParamSpec", "SearchSpaceSpec", "load_search_space"]

#: Every parameter a search space may name.
SEARCHABLE: tuple[str, ...] = (
    "backbone",
    *(f for f in ENGINE_FIELDS if f not in ("request_timeout_s", "oversubscribe")),
    *(f"train.{f}" for f in TRAIN_FIELDS),
)
_AUTO_OK = {"shards", "threads_per_shard"}
#: The categorical engine fields whose combinations EngineConfig restricts.
_LAYOUT_FIELDS = ("precision", "runtime", "mode", "isolation", "device", "share_weights")
_MAX_ENUM = 512

Scalar = bool | int | float | str


class ParamSpec(BaseModel):
    """One parameter: ``choices: [...]`` or a range ``low``/``high`` (``step``, ``log``).

    ``high: auto`` means the usable cores of this host (for ``shards`` and ``threads_per_shard``).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    choices: list[Scalar] | None = None
    low: float | int | None = None
    high: float | int | str | None = None
    step: float | int | None = Field(None, gt=0)
    log: bool = False

    @field_validator("choices")
    @classmethod
    def _non_empty(cls, value: list[Scalar] | None) -> list[Scalar] | None:
        if value is not None and not value:
            raise ValueError("choices must list at least one value")
        if value is not None and len(set(map(repr, value))) != len(value):
            raise ValueError("choices must not repeat a value")
        return value

    @model_validator(mode="after")
    def _shape(self, info: ValidationInfo) -> ParamSpec:
        if self.choices is not None:
            if self.low is not None or self.high is not None:
                raise ValueError("give either choices or low/high, not both")
            return self
        if self.low is None or self.high is None:
            raise ValueError("give choices: [...] or both low and high")
        if isinstance(self.high, str):
            if self.high != "auto":
                raise ValueError(f"high must be a number or 'auto', got {self.high!r}")
            cores = (info.context or {}).get("cores")
            if cores is None:
                raise ValueError("high: auto needs host facts")
            object.__setattr__(self, "high", int(cores))
        if self.low > self.high:  # type: ignore[operator]
            raise ValueError(f"low ({self.low}) must be <= high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError(f"log: true needs low > 0, got {self.low}")
        if self.log and self.step is not None:
            raise ValueError("log and step cannot be combined")
        return self

    @property
    def is_int(self) -> bool:
        return self.choices is None and all(
            isinstance(v, int) and not isinstance(v, bool) for v in (self.low, self.high, self.step) if v is not None
        )

    def values(self) -> list[Scalar]:
        """A finite set of values covering this parameter (all of them where small)."""
        if self.choices is not None:
            return list(self.choices)
        low, high = float(self.low), float(self.high)  # type: ignore[arg-type]
        if self.is_int:
            step = int(self.step or 1)
            count = (int(high) - int(low)) // step + 1
            if count <= _MAX_ENUM:
                return list(range(int(low), int(high) + 1, step))
            picks = {int(low) + step * round(i * (count - 1) / (_MAX_ENUM - 1)) for i in range(_MAX_ENUM)}
            return sorted(picks)
        if self.log:
            return [math.exp(math.log(low) + i * (math.log(high) - math.log(low)) / 8) for i in range(9)]
        return [low + i * (high - low) / 8 for i in range(9)]


def _param_kind(value: Any) -> str:
    return "~range" if isinstance(value, (dict, ParamSpec)) else "~fixed"


_Param = Annotated[
    Annotated[ParamSpec, Tag("~range")] | Annotated[Scalar, Tag("~fixed")],
    Discriminator(_param_kind),
]


class SearchSpaceSpec(BaseModel):
    """What a study may vary. Parameters not listed keep their EngineConfig/recipe defaults.

    Example (YAML)::

        params:
          backbone: {choices: [small_cnn, resnet18]}
          shards: {low: 1, high: auto}
          threads_per_shard: {low: 1, high: auto}
          pin: true                     # a scalar fixes the value
        constraints:
          - shards * threads_per_shard <= cores
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    params: dict[str, _Param] = Field(default_factory=dict)
    constraints: list[str] = Field(default_factory=list)
    source: str = Field("<inline>", exclude=True)

    @model_validator(mode="after")
    def _check_constraints_and_values(self, info: ValidationInfo) -> SearchSpaceSpec:
        problems = []
        host_names = HostFacts(cores=1, memory_gib=0.0, gpus=0).as_names()
        for name in self.params:
            if name not in SEARCHABLE:
                close = difflib.get_close_matches(str(name), SEARCHABLE, n=1)
                hint = f" Did you mean '{close[0]}'?" if close else f" Known: {', '.join(SEARCHABLE)}."
                problems.append(f"params.{name}: unknown parameter.{hint}")
                continue
            for value in self.values_of(name):
                problem = _value_problem(name, value)
                if problem:
                    problems.append(f"params.{name}: {problem}, got {value!r}")
        parsed = []
        if len(self.constraints) > MAX_CONSTRAINTS:
            problems.append(
                f"constraints: at most {MAX_CONSTRAINTS} constraints (each is checked against every "
                f"combination), got {len(self.constraints)}. Merge or drop some"
            )
        for i, text in enumerate(self.constraints[:MAX_CONSTRAINTS]):
            try:
                expr = Expression.parse(text)
            except ExpressionError as exc:
                problems.append(f"constraints[{i}]: {exc} in {short_value(text, 80)}")
                continue
            unknown = sorted(n for n in expr.names if n not in SEARCHABLE and n not in host_names)
            if unknown:
                problems.append(
                    f"constraints[{i}]: names unknown parameter(s) {', '.join(unknown)} in {text!r}; "
                    f"use search parameters or host facts ({', '.join(host_names)})"
                )
                continue
            parsed.append(expr)
        if not problems:
            unservable = self._unservable()
            if unservable:
                problems.append(unservable)
        host = (info.context or {}).get("host")
        if not problems and parsed and host is not None and not self._satisfiable(parsed, host):
            problems.append(
                f"constraints: no point of the space satisfies {[e.text for e in parsed]} on this host "
                f"(cores={host.cores}, gpus={host.gpus}, memory_gib={host.memory_gib}). Widen the ranges or relax the constraints"
            )
        if problems:
            raise ValueError("\n".join(problems))
        return self

    def values_of(self, name: str) -> list[Scalar]:
        """Candidate values of ``name`` (its default alone when the space does not vary it)."""
        spec = self.params.get(name)
        if spec is None:
            return [default_of(name)]
        if isinstance(spec, ParamSpec):
            return spec.values()
        return [spec]

    def _unservable(self) -> str | None:
        """Why no combination of the layout's categorical fields forms a valid EngineConfig (None if one does)."""
        from pydantic import ValidationError

        names = [n for n in _LAYOUT_FIELDS if n in self.params]
        if not names:
            return None
        first = None
        for combo in itertools.product(*(self.values_of(n) for n in names)):
            point = dict(zip(names, combo))
            point["pool_slots"] = max(int(v) for v in self.values_of("pool_slots"))
            point["batch_size"] = min(int(v) for v in self.values_of("batch_size"))
            try:
                EngineConfig(**point)
                return None
            except ValidationError as exc:
                first = first or exc.errors(include_url=False)[0]["msg"].removeprefix("Value error, ")
        return f"params: no combination of {', '.join(names)} can be served ({first}). Change one of these values"

    def expressions(self) -> list[Expression]:
        return [Expression.parse(text) for text in self.constraints]

    def _satisfiable(self, exprs: list[Expression], host: HostFacts) -> bool:
        names = sorted({n for e in exprs for n in e.names} - set(host.as_names()))
        pools = [self.values_of(n) for n in names]
        env = dict(host.as_names())
        for combo in itertools.islice(itertools.product(*pools), 200_000):
            env.update(dict(zip(names, combo)))  # type: ignore[arg-type]
            if all(e.evaluate(env) for e in exprs):
                return True
        return False

    def satisfies(self, point: dict[str, Any], host: HostFacts) -> list[str]:
        """Return the constraints ``point`` breaks (names it lacks take their defaults)."""
        env: dict[str, Any] = {**host.as_names()}
        broken = []
        for expr in self.expressions():
            for n in expr.names:
                env.setdefault(n, point.get(n, default_of(n)) if n in SEARCHABLE else env.get(n))
                if n in point:
                    env[n] = point[n]
            if not expr.evaluate(env):
                broken.append(expr.text)
        return broken

    def feasible_values(self, name: str, bound: dict[str, Any], host: HostFacts) -> list[Scalar]:
        """Values of ``name`` that keep every constraint whose other names are already bound.

        This is what makes parameters conditional: with ``shards=2`` on 2 cores and the rule
        ``shards * threads_per_shard <= cores``, only ``threads_per_shard=1`` remains.
        """
        known = set(bound) | set(host.as_names()) | {name}
        exprs = [e for e in self.expressions() if name in e.names and e.names <= known]
        values = self.values_of(name)
        if not exprs:
            return values
        env = {**host.as_names(), **bound}
        return [v for v in values if all(e.evaluate({**env, name: v}) for e in exprs)]


def default_of(name: str) -> Scalar:
    """The value a parameter takes when the space does not name it."""
    from lepton_tune.config._recipe import TrainRecipe

    if name == "backbone":
        return "small_cnn"
    if name.startswith("train."):
        default: Scalar = TrainRecipe.model_fields[name[6:]].default
        return default
    engine_default: Scalar = EngineConfig.model_fields[name].default
    return engine_default


def _value_problem(name: str, value: Any) -> str | None:
    """Check one candidate value against the type and bounds of the field it will fill."""
    from typing import Annotated

    from pydantic import TypeAdapter

    from lepton_tune.config._recipe import TrainRecipe

    if name == "backbone":
        return None if value in BACKBONES else f"must be one of {list(BACKBONES)}"
    if name == "device" and not (isinstance(value, str) and re.fullmatch(r"cpu|cuda(:\d+)?", value)):
        return "must be 'cpu', 'cuda' or 'cuda:N'"
    field = TrainRecipe.model_fields[name[6:]] if name.startswith("train.") else EngineConfig.model_fields[name]
    typ: Any = Annotated.__class_getitem__((field.annotation, *field.metadata)) if field.metadata else field.annotation  # type: ignore[attr-defined]
    adapter: TypeAdapter[Any] = TypeAdapter(typ)
    try:
        adapter.validate_python(value, strict=isinstance(value, bool) or None)
    except ValidationError as exc:
        return exc.errors(include_url=False)[0]["msg"]
    return None


def load_search_space(
    source: str | Path | dict[str, Any], *, host: HostFacts | None = None, where: str | None = None
) -> SearchSpaceSpec:
    """Load and validate a search space from a YAML file or an inline mapping.

    Example:
        >>> space = load_search_space({"params": {"shards": {"low": 1, "high": 2}}})
        >>> space.values_of("shards")
        [1, 2]
    """
    host = host or host_facts()
    if isinstance(source, dict):
        data, label, prefix = source, where or "<inline>", list[str]()
    else:
        data, label, prefix = load_yaml(source, what="search space"), str(source), []
    problems = _auto_misuse(data, label)
    try:
        space = SearchSpaceSpec.model_validate({**data, "source": label}, context={"host": host, "cores": host.cores})
    except ValidationError as exc:
        problems += format_validation_error(exc, source=label, model=SearchSpaceSpec, prefix=prefix)
    if problems:
        raise ConfigError(problems)
    return space


def _auto_misuse(data: dict[str, Any], label: str) -> list[str]:
    """``high: auto`` means usable cores, so only core-count parameters may use it."""
    params = data.get("params")
    if not isinstance(params, dict):
        return []
    return [
        f"{label}: params.{name}.high: 'auto' (usable cores) is only allowed for "
        f"{', '.join(sorted(_AUTO_OK))}, got 'auto'. Give a number."
        for name, spec in params.items()
        if name not in _AUTO_OK and isinstance(spec, dict) and spec.get("high") == "auto"
    ]
