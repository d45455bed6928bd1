"""StudySpec: one study file (dataset, recipe, space, objectives, budgets, protocol, storage)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from lepton_tune.config._errors import format_validation_error, load_yaml
from lepton_tune.config._host import HostFacts, host_facts
from lepton_tune.config._metrics import METRICS
from lepton_tune.config._recipe import ModelSpec, TrainRecipe
from lepton_tune.config._space import SearchSpaceSpec, load_search_space
from lepton_tune.exceptions import ConfigError

__all__ = [
    "DEFAULT_RUN_DIR",
    "DEFAULT_STUDY",
    "SAMPLERS",
    "DatasetSpec",
    "LimitsSpec",
    "PricesSpec",
    "ProtocolSpec",
    "SamplerSpec",
    "StorageSpec",
    "StudySpec",
    "TrackingSpec",
    "load_study",
]

#: Where a search writes study.db, mlflow.db and reports, and the study it runs, unless told otherwise.
DEFAULT_RUN_DIR = Path("lepton-runs")
DEFAULT_STUDY = Path("studies/quickstart.yaml")

SamplerName = Literal["tpe", "nsga2", "random", "grid", "qmc"]
SAMPLERS: tuple[str, ...] = get_args(SamplerName)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class DatasetSpec(_Strict):
    """Which images: ``digits`` (embedded default), ``imagefolder``, ``cifar10`` or ``synthetic``.

    ``eval_only: true`` (imagefolder, for a model served as given): no training split; a seeded
    ``calibration_images`` subset (int8 calibration and conversion checks) and a disjoint
    ``accuracy_images`` subset (the accuracy metric; None = every other image). ``classes`` names
    a file with one class name per line, in the order of the model's outputs (default: the folder
    names, sorted). Preprocessing the torchvision way: ``resize`` (shorter side, aspect kept), then
    ``center_crop`` (the model's input side, also ``image_size``), ``mean``/``std``, ``channels``
    and ``color`` (``bgr`` swaps the decoded RGB channels).
    """

    kind: Literal["digits", "imagefolder", "cifar10", "synthetic"] = "digits"
    path: str | None = None
    image_size: int = Field(32, ge=8, le=1024)
    channels: Literal[1, 3] = 3
    split_seed: int = 0
    val_fraction: float = Field(0.15, gt=0.0, lt=0.5)
    test_fraction: float = Field(0.3, gt=0.0, lt=0.9)
    num_classes: int = Field(10, ge=2, le=100_000)
    samples: int = Field(512, ge=16, description="synthetic only: how many random images")
    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    eval_only: bool = False
    classes: str | None = None
    calibration_images: int = Field(256, ge=1, le=1_000_000)
    accuracy_images: int | None = Field(None, ge=1, le=10_000_000)
    resize: int | None = Field(None, ge=8, le=8192)
    center_crop: int | None = Field(None, ge=8, le=1024)
    color: Literal["rgb", "bgr"] = "rgb"

    @model_validator(mode="before")
    @classmethod
    def _crop_is_the_size(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("center_crop") is not None and data.get("image_size") is None:
            data = {**data, "image_size": data["center_crop"]}
        return data

    @model_validator(mode="after")
    def _path_rule(self) -> DatasetSpec:
        if self.kind in ("imagefolder", "cifar10") and not self.path:
            raise ValueError(f"dataset.path: kind '{self.kind}' needs a directory path, got None")
        if self.val_fraction + self.test_fraction >= 0.9:
            raise ValueError(
                f"dataset.val_fraction: val_fraction + test_fraction must be < 0.9 to leave data to "
                f"train on, got {self.val_fraction + self.test_fraction:g}"
            )
        if (self.eval_only or self.classes) and self.kind != "imagefolder":
            raise ValueError(f"dataset.eval_only/classes: apply to kind 'imagefolder', got kind '{self.kind}'")
        if self.center_crop is not None and self.center_crop != self.image_size:
            raise ValueError(
                f"dataset.center_crop: is the model's input side, so it must equal image_size; got "
                f"center_crop {self.center_crop} and image_size {self.image_size}. Give one of them"
            )
        if self.resize is not None and self.resize < self.image_size:
            raise ValueError(
                f"dataset.resize: the shorter side after resizing must be >= the crop "
                f"(image_size {self.image_size}), got {self.resize}"
            )
        return self

    def preprocessing_steps(self) -> dict[str, Any]:
        """The optional torchvision-style steps, only those set (so older fingerprints do not change)."""
        steps: dict[str, Any] = {}
        if self.resize is not None:
            steps["resize"] = self.resize
        if self.center_crop is not None or self.resize is not None:
            steps["center_crop"] = self.image_size
        if self.color != "rgb":
            steps["color"] = self.color
        return steps


class ProtocolSpec(_Strict):
    """How latency, throughput and memory are measured (docs/architecture.md, definitions).

    ``loop: closed`` keeps ``concurrency`` requests in flight; ``loop: open`` sends at ``rate``
    requests per second whatever the answers do. Each of ``repeats`` windows sends ``requests``
    requests after ``warmup`` unmeasured ones; p50/p95/p99 are medians over the windows.
    """

    warmup: int = Field(20, ge=0)
    requests: int = Field(200, ge=10)
    repeats: int = Field(3, ge=1, le=100)
    concurrency: int = Field(4, ge=1, le=4096)
    loop: Literal["closed", "open"] = "closed"
    rate: float | None = Field(None, gt=0.0)
    memory_hz: float = Field(50.0, ge=20.0, le=1000.0, description="PSS sampling rate in the (untimed) memory window")
    noise_threshold: float = Field(
        0.10,
        ge=0.0,
        le=64.0,
        description="cores other processes may use during a timed window before it is re-measured",
    )
    noise_retries: int = Field(
        3, ge=0, le=100, description="re-measured windows per run before the result is marked noisy"
    )
    probe_requests: int = Field(30, ge=0)
    probe_margin: float = Field(1.5, ge=1.0)
    accuracy_samples: int | None = Field(None, ge=1, description="cap on test images; None = all")
    warm: bool = Field(
        True, description="fork each trial's process from one warm zygote per search (measure/_zygote.py)"
    )
    short_fraction: float | None = Field(
        None,
        gt=0.0,
        lt=1.0,
        description="multi-fidelity: measure each new point first with this share of requests "
        "and repeats; the full protocol runs only if the point could still enter the front. None = off",
    )
    short_margin: float = Field(
        0.10,
        ge=0.0,
        le=10.0,
        description="optimism of the short window: each objective is improved by its spread, "
        "at least this share of its value, before asking the front",
    )
    short_min_gain: float = Field(
        0.0,
        ge=0.0,
        le=1.0,
        description="stop after the short window unless the optimistic point raises the "
        "front's hypervolume by more than this share",
    )

    @model_validator(mode="after")
    def _rate_rule(self) -> ProtocolSpec:
        if self.loop == "open" and self.rate is None:
            raise ValueError("protocol.rate: loop 'open' needs a request rate (requests per second), got None")
        return self


class PricesSpec(_Strict):
    """Prices for the cost objective (USD per million images)."""

    usd_per_core_hour: float = Field(0.0425, ge=0.0)
    usd_per_GiB_hour: float = Field(0.0057, ge=0.0)


class SamplerSpec(_Strict):
    # qmc is the default by measurement: benchmarks/search.py (see benchmarks/README.md#search).
    name: SamplerName = "qmc"
    seed: int | None = 0
    n_startup_trials: int | None = Field(None, ge=0)


class StorageSpec(_Strict):
    """Optuna storage. ``url: None`` means SQLite in the run directory."""

    url: str | None = None
    heartbeat_interval: int = Field(10, ge=1)
    grace_period: int | None = Field(None, ge=2)
    max_retry: int = Field(2, ge=0)


class TrackingSpec(_Strict):
    enabled: bool = True
    uri: str | None = None


class LimitsSpec(_Strict):
    """Per-trial limits; a trial past them is stopped and recorded as failed with the reason.

    They bound the serving phase of a trial (engine start, probe, measurement, accuracy), which
    runs in its own process; training is a one-time cost cached across trials and is not limited.
    """

    trial_timeout_s: float | None = Field(None, gt=0.0)
    trial_memory_mb: float | None = Field(None, gt=0.0)


class StudySpec(_Strict):
    """A whole study, validated. Load it with :func:`load_study`.

    Example:
        >>> spec = load_study({"name": "demo", "objectives": ["accuracy", "latency_p95_ms"],
        ...                    "search_space": {"params": {"shards": {"low": 1, "high": 2}}}})
        >>> spec.directions
        ['maximize', 'minimize']
    """

    name: str
    dataset: DatasetSpec = Field(default_factory=DatasetSpec)
    train: TrainRecipe = Field(default_factory=TrainRecipe)
    model: ModelSpec | None = None
    search_space: str | SearchSpaceSpec
    objectives: list[str] = Field(default_factory=lambda: ["accuracy", "latency_p95_ms", "memory_mb"])
    budgets: dict[str, float] = Field(default_factory=dict)
    sampler: SamplerSpec = Field(default_factory=SamplerSpec)
    n_trials: int | None = Field(20, ge=1)
    timeout: float | None = Field(None, gt=0.0)
    protocol: ProtocolSpec = Field(default_factory=ProtocolSpec)
    prices: PricesSpec = Field(default_factory=PricesSpec)
    storage: StorageSpec = Field(default_factory=StorageSpec)
    tracking: TrackingSpec = Field(default_factory=TrackingSpec)
    limits: LimitsSpec = Field(default_factory=LimitsSpec)
    allow_foreign_host: bool = False
    baseline: bool = True
    source: str = Field("<inline>", exclude=True)

    @field_validator("name")
    @classmethod
    def _name_form(cls, value: str) -> str:
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,127}", value):
            raise ValueError("must be letters, digits, '_', '.', '-' (at most 128)")
        return value

    @field_validator("sampler", mode="before")
    @classmethod
    def _sampler_shorthand(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_validator("objectives")
    @classmethod
    def _objectives_known(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("list at least one objective")
        problems = [f"'{o}' is not a metric (known: {', '.join(METRICS)})" for o in value if o not in METRICS]
        twice = sorted({o for o in value if value.count(o) > 1})
        if twice:
            problems.append(f"{', '.join(repr(o) for o in twice)} listed twice; list each objective once")
        if problems:
            raise ValueError("; ".join(problems))
        return value

    @field_validator("budgets")
    @classmethod
    def _budgets_known(cls, value: dict[str, float]) -> dict[str, float]:
        unknown = [k for k in value if k not in METRICS]
        if unknown:
            raise ValueError(
                f"budget on unknown metric(s) {', '.join(map(repr, unknown))} (known: {', '.join(METRICS)})"
            )
        return value

    @model_validator(mode="after")
    def _cross_rules(self) -> StudySpec:
        problems = []
        if self.dataset.kind == "synthetic":
            if "accuracy" in self.objectives:
                problems.append(
                    "objectives: 'accuracy' cannot be measured on a synthetic dataset (random labels), got "
                    f"{self.objectives}. Remove it or use a real dataset"
                )
            if "accuracy" in self.budgets:
                problems.append(
                    "budgets.accuracy: a synthetic dataset has no meaningful accuracy, got "
                    f"{self.budgets['accuracy']}. Remove the budget"
                )
        if "accuracy" in self.budgets and not 0.0 <= self.budgets["accuracy"] <= 1.0:
            problems.append(f"budgets.accuracy: must be a fraction in [0, 1], got {self.budgets['accuracy']}")
        space = self.search_space
        if isinstance(space, SearchSpaceSpec) and self.model is not None and "backbone" in space.params:
            problems.append(
                f"search_space.params.backbone: a study with a model section serves that model "
                f"({self.model.label}); remove backbone from the space"
            )
        if "accuracy_drop" in self.budgets and not self.baseline:
            problems.append(
                "budgets.accuracy_drop: is measured against the baseline (your model as given, fp32 "
                "eager, in-process), so it needs 'baseline: true', got baseline: false"
            )
        if self.dataset.eval_only and self.model is not None and self.model.train:
            problems.append(
                "dataset.eval_only: an evaluation-only dataset has no training split, but model.train is "
                "true. Set model.train: false to serve your weights as given"
            )
        if self.n_trials is None and self.timeout is None:
            problems.append("n_trials: give n_trials or timeout (or both) so the study ends, got neither")
        if problems:
            raise ValueError("\n".join(problems))
        return self

    @property
    def directions(self) -> list[str]:
        """Optuna directions, one per objective."""
        return [METRICS[o] for o in self.objectives]

    @property
    def space(self) -> SearchSpaceSpec:
        assert isinstance(self.search_space, SearchSpaceSpec), "load the study with load_study()"
        return self.search_space


def _resolve_space_path(ref: str, study_path: Path | None) -> Path:
    candidate = Path(ref).expanduser()
    if candidate.is_absolute():
        return candidate
    for base in ([study_path.parent, study_path.parent.parent] if study_path else []) + [Path.cwd()]:
        if (base / candidate).is_file():
            return base / candidate
    return (study_path.parent if study_path else Path.cwd()) / candidate


def load_study(source: str | Path | dict[str, Any], *, host: HostFacts | None = None) -> StudySpec:
    """Load a study from YAML (or a mapping), resolve its search space, and validate everything.

    All problems of the study and its space are reported together in one :class:`ConfigError`.
    A search space given by file is looked up beside the study file, then one folder up, then
    in the working directory.

    Example:
        >>> load_study({"name": "x", "search_space": {"params": {}}}).dataset.kind
        'digits'
    """
    host = host or host_facts()
    if isinstance(source, dict):
        data, label, study_path = dict(source), "<inline>", None
    else:
        study_path = Path(source)
        data, label = load_yaml(study_path, what="study"), str(source)
    problems: list[str] = []
    raw_space = data.get("search_space")
    space: SearchSpaceSpec | None = None
    try:
        if isinstance(raw_space, str):
            space = load_search_space(_resolve_space_path(raw_space, study_path), host=host)
        elif isinstance(raw_space, dict):
            space = load_search_space(raw_space, host=host, where=f"{label}: search_space")
    except ConfigError as exc:
        problems.extend(exc.problems)
    if raw_space is None:
        problems.append(
            f"{label}: search_space: required key is missing. Name a file in search_spaces/ or give params inline."
        )
    elif not isinstance(raw_space, (str, dict)):
        problems.append(f"{label}: search_space: must be a file path or a mapping, got {raw_space!r}.")
    data["search_space"] = space if space is not None else "<invalid>"
    data["source"] = label
    try:
        spec = StudySpec.model_validate(data)
    except ValidationError as exc:
        lines = format_validation_error(exc, source=label, model=StudySpec)
        problems.extend(line for line in lines if "search_space" not in line.split(":", 2)[1] or space is not None)
        raise ConfigError(problems) from None
    if problems:
        raise ConfigError(problems)
    return spec
