"""Sampler factory: qmc (default; scrambled Sobol, so its seed picks the sequence), tpe, nsga2, random, grid, all seedable."""

from __future__ import annotations

import warnings

import optuna

from lepton_tune.config import HostFacts, ParamSpec, SamplerSpec, SearchSpaceSpec
from lepton_tune.exceptions import ConfigError

__all__ = ["make_sampler"]


def make_sampler(
    spec: SamplerSpec, space: SearchSpaceSpec, host: HostFacts, *, seed: int | None = None, name: str | None = None
) -> optuna.samplers.BaseSampler:
    """Build the sampler named by ``name`` (CLI override) or ``spec.name``.

    TPE uses ``constant_liar`` so that parallel workers do not all propose the same point.

    Example:
        >>> from lepton_tune.config import load_search_space
        >>> make_sampler(SamplerSpec(name="random"), load_search_space({}), HostFacts(2, 1.0, 0)).__class__.__name__
        'RandomSampler'
    """
    name = name or spec.name
    seed = spec.seed if seed is None else seed
    if name == "tpe":
        if spec.n_startup_trials is None:
            return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True, n_startup_trials=spec.n_startup_trials)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "qmc":
        with warnings.catch_warnings():  # experimental in Optuna, and chosen by measurement here
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return optuna.samplers.QMCSampler(seed=seed, scramble=True, warn_independent_sampling=False)
    if name == "grid":
        grid = {n: p.values() for n, p in space.params.items() if isinstance(p, ParamSpec)}
        return optuna.samplers.GridSampler(grid, seed=seed)
    raise ConfigError(f"--sampler: must be one of tpe, nsga2, random, grid, qmc, got {name!r}")
