"""Turn (model, config, input shape, core plan) into lanes: replica copies or pipeline stages."""

from __future__ import annotations

import os

import torch

from lepton_tune.config import EngineConfig
from lepton_tune.engine._lane import Lane, StagePlan
from lepton_tune.engine._runtime import build_runner
from lepton_tune.engine._shard import StageSpec
from lepton_tune.engine._split import split_model
from lepton_tune.exceptions import EngineError

__all__ = ["build_lanes", "probe_output"]


def probe_output(model: torch.nn.Module, config: EngineConfig, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Run the model once in this process, where its weights are, on zeros to learn one output's shape.

    Raises:
        EngineError: the model fails on an input of that shape, or returns no batch dimension.

    Example:
        >>> probe_output(torch.nn.Linear(3, 2), EngineConfig(), (3,))
        (2,)
    """
    known = getattr(model, "output_shape", None) if config.runtime in ("onnxruntime", "openvino") else None
    if known is not None:  # an OnnxModule/OpenVinoModule knows it: no session or compiled model in the parent
        return tuple(known)
    first = next(iter(model.parameters()), None)
    device = str(first.device) if first is not None and first.device.type != "meta" else "cpu"
    # The output shape does not depend on the runtime: never compile in the parent.
    runtime = "eager" if config.runtime == "compile" else config.runtime
    run = build_runner(model, precision=config.precision, runtime=runtime, device=device)
    try:
        out = run(torch.zeros((1, *shape)))
    except Exception as exc:  # any model error here means the shape or model is wrong
        raise EngineError(
            f"engine: the model failed on one zero image of shape {tuple(shape)}: {type(exc).__name__}: {exc}. "
            "Check input_shape"
        ) from exc
    if out.ndim < 1 or out.shape[0] != 1:
        raise EngineError(
            f"engine: the model returned shape {tuple(out.shape)} for a batch of 1; expected [1, num_outputs]"
        )
    return tuple(out.shape[1:])


def _spec(config: EngineConfig, index: int, stage: int, stages: int, cores: list[int], private: bool) -> StageSpec:
    return StageSpec(
        index=index,
        stage=stage,
        stages=stages,
        cores=tuple(cores) if config.pin else None,
        threads=config.threads_per_shard,
        batch_size=config.batch_size,
        max_wait_ms=config.max_wait_ms,
        precision=config.precision,
        runtime=config.runtime,
        device=config.device,
        private_weights=private,
        parent_pid=os.getpid(),
    )


def build_lanes(
    model: torch.nn.Module, config: EngineConfig, shape: tuple[int, ...], core_plan: list[list[int]]
) -> tuple[list[Lane], tuple[int, ...]]:
    """Plan the lanes (not started) and return them with one output's shape.

    Replica mode: ``shards`` lanes, each with the whole model. Pipeline mode: one lane whose
    ``shards`` stages are fx cuts of the model of roughly equal measured cost.
    """
    k = config.shards
    if config.mode == "replica":
        out_shape = probe_output(model, config, shape)
        lanes = [
            Lane(
                index=i,
                slots=config.pool_slots,
                out_shape=out_shape,
                stages=[
                    StagePlan(
                        module=model,
                        spec=_spec(config, i, 0, 1, core_plan[i], not config.share_weights),
                        in_shape=shape,
                        in_dtype=torch.float32,
                    )
                ],
            )
            for i in range(k)
        ]
        return lanes, out_shape
    stages = split_model(model, shape, k, precision=config.precision)
    plans = []
    for s, stage in enumerate(stages):
        in_shape, in_dtype = (shape, torch.float32) if s == 0 else (stages[s - 1].out_shape, stages[s - 1].out_dtype)
        plans.append(
            StagePlan(
                module=stage.module,
                spec=_spec(config, s, s, k, core_plan[s], True),
                in_shape=in_shape,
                in_dtype=in_dtype,
            )
        )
    return [Lane(index=0, slots=config.pool_slots, out_shape=stages[-1].out_shape, stages=plans)], stages[-1].out_shape
