"""Turn a search space into Optuna suggestions, with conditional ranges from the constraints."""

from __future__ import annotations

from typing import Any

import optuna

from lepton_tune.config import SEARCHABLE, HostFacts, ParamSpec, SearchSpaceSpec, default_of

__all__ = ["SUGGEST_ORDER", "suggest_point"]

#: Order of suggestion: what the model is first, then how it is served, so that later
#: parameters can be narrowed by the constraints on earlier ones.
SUGGEST_ORDER = SEARCHABLE


def _suggest_range(trial: optuna.trial.BaseTrial, name: str, spec: ParamSpec, allowed: list[Any]) -> Any:
    if spec.is_int:
        step = int(spec.step or 1)
        return trial.suggest_int(name, int(min(allowed)), int(max(allowed)), step=step, log=spec.log)
    return trial.suggest_float(name, float(min(allowed)), float(max(allowed)), step=spec.step, log=spec.log)


def suggest_point(
    trial: optuna.trial.BaseTrial, space: SearchSpaceSpec, host: HostFacts, *, defaults: dict[str, Any] | None = None
) -> tuple[dict[str, Any], str | None]:
    """Suggest one point; return ``(point, None)`` or ``(point, reason)`` when it breaks a constraint.

    Integer and float ranges are narrowed to the values the constraints allow given the
    parameters already chosen (``threads_per_shard`` is bounded by the cores left for ``shards``).
    Parameters the space does not name take ``defaults`` (the study's recipe) or their defaults.
    A categorical keeps its full choice list (Optuna needs a fixed list per name); when only one
    of its choices is allowed it is fixed without asking the sampler; otherwise a disallowed
    choice makes the point infeasible, which is recorded without running anything.

    Example:
        >>> from lepton_tune.config import load_search_space
        >>> space = load_search_space({"params": {"shards": {"low": 1, "high": 2}}})
        >>> suggest_point(optuna.trial.FixedTrial({"shards": 2}), space, HostFacts(2, 1.0, 0))[0]["shards"]
        2
    """
    point: dict[str, Any] = {}
    defaults = defaults or {}
    for name in SUGGEST_ORDER:
        spec = space.params.get(name)
        if spec is None:
            point[name] = defaults.get(name, default_of(name))
            continue
        if not isinstance(spec, ParamSpec):
            point[name] = spec
            continue
        allowed = space.feasible_values(name, point, host)
        if not allowed:
            point[name] = spec.values()[0]
            return point, f"no value of {name} satisfies the constraints given {_bound_text(space, name, point)}"
        if spec.choices is not None:
            if len(allowed) == 1 and len(spec.choices) > 1:
                point[name] = allowed[0]
                continue
            point[name] = trial.suggest_categorical(name, spec.choices)
        else:
            point[name] = _suggest_range(trial, name, spec, allowed)
    broken = space.satisfies(point, host)
    if broken:
        return point, f"breaks constraint(s): {'; '.join(broken)}"
    return point, None


def _bound_text(space: SearchSpaceSpec, name: str, point: dict[str, Any]) -> str:
    names = {n for e in space.expressions() if name in e.names for n in e.names} - {name}
    return ", ".join(f"{n}={point[n]!r}" for n in sorted(names) if n in point) or "this host"
