"""EngineConfig: one concrete serving layout, validated; what a production bundle stores."""

from __future__ import annotations

import re
from typing import Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "ENGINE_FIELDS",
    "MODES",
    "PRECISIONS",
    "RUNTIMES",
    "THREAD_RUNTIMES",
    "EngineConfig",
    "Mode",
    "Precision",
    "Runtime",
]

# Each choice list is declared once, as the type; the tuples are derived from it.
Precision = Literal["fp32", "bf16", "fp16", "int8", "int8_dynamic"]
Runtime = Literal["eager", "compile", "onnxruntime", "openvino"]
Mode = Literal["replica", "pipeline"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
MODES: tuple[str, ...] = get_args(Mode)
RUNTIMES: tuple[str, ...] = get_args(Runtime)
#: Runtimes whose calls release the GIL for a whole batch, so lanes may be threads of one process.
THREAD_RUNTIMES: tuple[str, ...] = ("onnxruntime", "openvino")


class EngineConfig(BaseModel):
    """How a model is served: shard count, core allocation, pools, precision and device.

    The fields are exactly the YAML keys. Host-dependent rules (cores) are checked when an
    engine starts, by :meth:`check_cores`.

    Example:
        >>> cfg = EngineConfig(shards=2, threads_per_shard=1, batch_size=8)
        >>> cfg.cores_used
        2
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    precision: Precision = "fp32"
    runtime: Runtime = "eager"
    shards: int = Field(1, ge=1, le=256)
    mode: Mode = "replica"
    isolation: Literal["process", "thread"] = "process"
    threads_per_shard: int = Field(1, ge=1, le=1024)
    pin: bool = False
    batch_size: int = Field(1, ge=1, le=4096)
    max_wait_ms: float = Field(0.0, ge=0.0, le=10_000.0)
    pool_slots: int = Field(16, ge=1, le=65536)
    cache_entries: int = Field(0, ge=0)
    share_weights: bool = False
    device: str = "cpu"
    oversubscribe: bool = False
    request_timeout_s: float = Field(60.0, gt=0.0)

    @field_validator("device")
    @classmethod
    def _device_form(cls, value: str) -> str:
        if not re.fullmatch(r"cpu|cuda(:\d+)?", value):
            raise ValueError("must be 'cpu', 'cuda' or 'cuda:N'")
        return value

    @model_validator(mode="after")
    def _combinations(self) -> EngineConfig:
        if self.pool_slots < self.batch_size:
            raise ValueError(
                f"pool_slots ({self.pool_slots}) must be >= batch_size ({self.batch_size}): a shard "
                "can only batch requests that hold a slot. Raise pool_slots"
            )
        if self.mode == "pipeline" and self.share_weights:
            raise ValueError(
                "share_weights only applies to mode 'replica' (pipeline stages hold disjoint weights). "
                "Set share_weights: false"
            )
        threadable = self.runtime in THREAD_RUNTIMES and (self.mode, self.device) == ("replica", "cpu")
        if self.isolation == "thread" and not threadable:
            raise ValueError(
                f"isolation 'thread' serves runtime 'onnxruntime' or 'openvino', mode 'replica', device 'cpu' only (got "
                f"runtime {self.runtime!r}, mode {self.mode!r}, device {self.device!r}): only ONNX Runtime and OpenVINO "
                "release the GIL for a whole call and keep a thread pool per session. Use isolation: process"
            )
        if self.precision == "fp16" and not self.device.startswith("cuda"):
            raise ValueError("precision 'fp16' needs device 'cuda' (this CPU has no fp16 kernels)")
        return self

    @property
    def cores_used(self) -> int:
        """CPU cores this layout asks for (shards x threads per shard)."""
        return self.shards * self.threads_per_shard

    def check_cores(self, usable: int) -> str | None:
        """Return why this layout does not fit ``usable`` cores, or None if it does."""
        if self.cores_used > usable and not self.oversubscribe:
            return (
                f"shards * threads_per_shard = {self.shards} * {self.threads_per_shard} = "
                f"{self.cores_used} exceeds the {usable} usable cores; lower them or set oversubscribe: true"
            )
        if self.pin and self.cores_used > usable:
            return f"pin: true needs {self.cores_used} distinct cores, only {usable} are usable"
        return None


ENGINE_FIELDS: tuple[str, ...] = tuple(EngineConfig.model_fields)
