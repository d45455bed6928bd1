"""Pipeline mode: trace the model with torch.fx and cut it into stages of roughly equal cost.

A cut is legal after a node when exactly one tensor value crosses it (constants fetched with
``get_attr`` are re-created in the stage that uses them), so a stage hands the next one a single
tensor through its own shared-memory slots.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import torch
import torch.fx

from lepton_tune.engine._runtime import input_dtype
from lepton_tune.exceptions import EngineLayoutError

__all__ = ["Stage", "cut_points", "split_model"]


@dataclass
class Stage:
    """One pipeline stage: its module, what it receives and what it hands on (per image)."""

    module: torch.fx.GraphModule
    in_shape: tuple[int, ...]
    in_dtype: torch.dtype
    out_shape: tuple[int, ...]
    out_dtype: torch.dtype
    cost: float


class _Profiler(torch.fx.Interpreter):
    """Run the graph once, recording each node's seconds and tensor output shape/dtype."""

    def __init__(self, module: torch.fx.GraphModule) -> None:
        super().__init__(module)
        self.seconds: dict[torch.fx.Node, float] = {}
        self.meta: dict[torch.fx.Node, tuple[tuple[int, ...], torch.dtype] | None] = {}

    def run_node(self, n: torch.fx.Node) -> Any:
        started = time.perf_counter()
        out = super().run_node(n)
        self.seconds[n] = min(self.seconds.get(n, float("inf")), time.perf_counter() - started)
        self.meta[n] = (tuple(out.shape), out.dtype) if isinstance(out, torch.Tensor) else None
        return out


def _trace(module: torch.nn.Module) -> torch.fx.GraphModule:
    if isinstance(module, torch.fx.GraphModule):
        return module
    try:
        return torch.fx.symbolic_trace(module)
    except Exception as exc:  # fx raises many kinds; all mean "cannot trace"
        raise EngineLayoutError(
            f"engine: mode 'pipeline' needs a model torch.fx can trace, and tracing "
            f"{type(module).__name__} failed: {exc}. Use mode: replica"
        ) from exc


_QUANTIZED = {torch.quint8, torch.qint8, torch.qint32, torch.quint4x2}


def cut_points(nodes: list[torch.fx.Node], meta: dict[torch.fx.Node, Any]) -> dict[int, torch.fx.Node]:
    """Positions p where exactly one plain (not quantized) tensor defined at or before p is used
    after p, mapped to that tensor's node."""
    pos = {n: i for i, n in enumerate(nodes)}
    last_use = {n: max((pos[u] for u in n.users), default=-1) for n in nodes}
    points = {}
    for p in range(1, len(nodes) - 2):
        live = [n for n in nodes[: p + 1] if n.op != "get_attr" and last_use[n] > p]
        if len(live) != 1 or live[0].op == "placeholder" or meta.get(live[0]) is None:
            continue
        if meta[live[0]][1] not in _QUANTIZED:
            points[p] = live[0]
    return points


def _choose(points: list[int], cumulative: list[float], stages: int) -> list[int]:
    total = cumulative[-1]
    chosen: list[int] = []
    for j in range(1, stages):
        left = [p for p in points if not chosen or p > chosen[-1]]
        need = stages - 1 - j  # cuts still to place after this one
        usable = left[: len(left) - need] if need else left
        if not usable:
            break
        target = total * j / stages
        chosen.append(min(usable, key=lambda p: abs(cumulative[p] - target)))
    return chosen


def _stage_graph(
    gm: torch.fx.GraphModule,
    nodes: list[torch.fx.Node],
    start: int,
    end: int,
    entry: torch.fx.Node | None,
    exit_node: torch.fx.Node | None,
) -> torch.fx.GraphModule:
    graph = torch.fx.Graph()
    env: dict[torch.fx.Node, torch.fx.Node] = {}
    if entry is not None:
        env[entry] = graph.placeholder("x")

    def lookup(n: torch.fx.Node) -> torch.fx.Node:
        if n not in env and n.op == "get_attr":
            env[n] = graph.node_copy(n, lookup)
        return env[n]

    for n in nodes[start : end + 1]:
        if n.op == "get_attr":
            continue
        env[n] = graph.node_copy(n, lookup)
    if exit_node is not None:
        graph.output(env[exit_node])
    return torch.fx.GraphModule(gm, graph)


def split_model(
    module: torch.nn.Module, input_shape: tuple[int, ...], stages: int, *, precision: str, repeats: int = 3
) -> list[Stage]:
    """Cut ``module`` into ``stages`` consecutive stages of roughly equal measured cost.

    Args:
        module: the model (an ``nn.Module`` fx can trace, or an fx ``GraphModule``).
        input_shape: one image's shape.
        stages: how many stages (the engine's ``shards``).
        precision: the engine precision (bf16/fp16 cast the sample input like a shard would).
        repeats: runs of the profiler; each node's fastest run counts.

    Raises:
        EngineLayoutError: the model cannot be traced or has too few single-tensor cut points.

    Example:
        >>> net = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.ReLU(), torch.nn.Linear(4, 2))
        >>> [s.out_shape for s in split_model(net, (4,), 2, precision="fp32")]
        [(4,), (2,)]
    """
    gm = _trace(module)
    gm.eval()
    nodes = list(gm.graph.nodes)
    placeholders = [n for n in nodes if n.op == "placeholder"]
    if len(placeholders) != 1:
        raise EngineLayoutError(f"engine: mode 'pipeline' needs a model with one input, got {len(placeholders)}")
    sample = torch.zeros((1, *input_shape))
    cast = input_dtype(precision)
    if cast is not None:
        sample = sample.to(cast)
    profiler = _Profiler(gm)
    with torch.inference_mode():
        for _ in range(repeats):
            profiler.run(sample)
    cumulative, total = [], 0.0
    for n in nodes:
        total += profiler.seconds.get(n, 0.0)
        cumulative.append(total)
    points = cut_points(nodes, profiler.meta)
    cuts = _choose(sorted(points), cumulative, stages)
    if len(cuts) < stages - 1:
        raise EngineLayoutError(
            f"engine: mode 'pipeline' with shards = {stages} needs {stages - 1} cut points where a single "
            f"tensor crosses, and {type(module).__name__} has {len(points)}. Lower shards or use mode: replica"
        )
    bounds = [0, *[c + 1 for c in cuts], len(nodes)]
    out: list[Stage] = []
    for s in range(stages):
        start, end = bounds[s], bounds[s + 1] - 1
        entry = None if s == 0 else points[cuts[s - 1]]
        exit_node = points[cuts[s]] if s < stages - 1 else None
        stage_gm = _stage_graph(gm, nodes, start, end, entry, exit_node)
        in_meta = profiler.meta[placeholders[0] if entry is None else entry]
        out_node = exit_node if exit_node is not None else nodes[-1]
        out_meta = profiler.meta[out_node]
        if in_meta is None or out_meta is None:
            raise EngineLayoutError("engine: mode 'pipeline' needs a model that returns one tensor")
        cost = cumulative[end] - (cumulative[start - 1] if start else 0.0)
        out.append(Stage(stage_gm, in_meta[0][1:], in_meta[1], out_meta[0][1:], out_meta[1], cost))
    return out
