"""The parallel inference engine: shard processes, core plan, slot pools, batching, cache, recovery."""

from __future__ import annotations

from lepton_tune.engine._engine import Engine, EngineStats
from lepton_tune.engine._feasible import feasibility, precision_support
from lepton_tune.engine._lane import mp_context, start_process
from lepton_tune.engine._lifetime import cap_memory, die_with_parent
from lepton_tune.engine._plan import plan_cores
from lepton_tune.engine._runtime import build_runner, runtime_support
from lepton_tune.engine._runtime_onnx import OnnxModule
from lepton_tune.engine._runtime_openvino import OpenVinoModule
from lepton_tune.engine._split import split_model

__all__ = [
    "Engine",
    "EngineStats",
    "OnnxModule",
    "OpenVinoModule",
    "build_runner",
    "cap_memory",
    "die_with_parent",
    "feasibility",
    "mp_context",
    "plan_cores",
    "precision_support",
    "runtime_support",
    "split_model",
    "start_process",
]
