"""One execution plan: a node list, its memory plan, and its kernels bound to arrays.

``Executor`` is made once per mode at build (train: every node; eval: the inference nodes).
``plan`` computes lifetimes in execution order and places every non-constant value in the
arena; ``bind`` cuts the views out of the shared arena and pre-binds each kernel to its input
and output arrays, so ``invoke`` is a plain loop with no lookups or allocation per node.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import OpExecuteError, TodkitError
from todkit.ir.graph import Node, Value
from todkit.opset.registry import get_op
from todkit.opset.runctx import RunContext
from todkit.runtime.planner import DEFAULT_ALIGNMENT, ArenaPlan, Buffer, plan_arena


def arena_view(arena: np.ndarray, offset: int, value: Value) -> np.ndarray:
    """The typed, shaped window of ``arena`` that holds ``value``."""
    t = value.type
    return arena[offset:offset + t.nbytes].view(t.dtype.np).reshape(t.shape)


def lifetimes(nodes: list[Node], pinned: set[int], keep_alive: list[Value]) -> list[tuple]:
    """``(value, first, last)`` for every non-constant value the nodes produce.

    A value is live from its producer's step through its last reader's step inclusive; values
    in ``keep_alive`` (outputs read after the step) live to the end. Values in ``pinned`` (the
    graph inputs, placed by the caller) are skipped.
    """
    n_steps = len(nodes)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    values: dict[int, Value] = {}
    for step, node in enumerate(nodes):
        for v in node.inputs:
            if id(v) in first:
                last[id(v)] = step
        for v in node.outputs:
            values[id(v)] = v
            first[id(v)] = last[id(v)] = step
    for v in keep_alive:
        if id(v) in last:
            last[id(v)] = n_steps - 1
    return [(values[k], first[k], last[k]) for k in first if k not in pinned]


class Executor:
    def __init__(self, name: str, nodes: list[Node], pinned: dict[int, np.ndarray],
                 keep_alive: list[Value], training: bool, base: int,
                 alignment: int = DEFAULT_ALIGNMENT):
        self.name = name
        self.nodes = list(nodes)
        self.training = training
        self._pinned = pinned
        lives = lifetimes(self.nodes, set(pinned), keep_alive)
        self._planned = [v for v, _, _ in lives]
        self.plan: ArenaPlan = plan_arena(
            [Buffer(v.name, v.type.nbytes, a, b) for v, a, b in lives], alignment, base)
        self.views: dict[int, np.ndarray] = {}
        self.bound: list[tuple] = []

    def bind(self, arena: np.ndarray) -> None:
        """Cut this plan's views out of ``arena`` and pre-bind every kernel (once, at build)."""
        views = dict(self._pinned)
        for v, off in zip(self._planned, self.plan.offsets):
            views[id(v)] = arena_view(arena, off, v)
        self.views = views
        bound = []
        for node in self.nodes:
            ins = [v.data if v.is_const else views[id(v)] for v in node.inputs]
            outs = [views[id(v)] for v in node.outputs]
            bound.append((get_op(node.op).kernel, ins, outs, node.attrs))
        self.bound = bound

    def array(self, value: Value) -> np.ndarray:
        return value.data if value.is_const else self.views[id(value)]

    def invoke(self, rt: RunContext, start: int = 0, stop: int | None = None) -> None:
        """Run the bound kernels ``start`` to ``stop`` (default: all) in order."""
        rt.training = self.training
        bound = self.bound
        stop = len(bound) if stop is None else stop
        step = start
        try:
            for step in range(start, stop):
                kernel, ins, outs, attrs = bound[step]
                kernel(ins, outs, attrs, rt)
        except TodkitError:
            raise
        except Exception as e:
            raise self._failure(step, e) from e

    def invoke_traced(self, rt: RunContext, before, after, start: int = 0,
                      stop: int | None = None) -> None:
        """``invoke`` calling ``before(node, ins, outs)`` / ``after(node, ins, outs)`` around
        each kernel (Lite's kernel callbacks); a slower loop used only when asked for."""
        rt.training = self.training
        stop = len(self.bound) if stop is None else stop
        for step in range(start, stop):
            kernel, ins, outs, attrs = self.bound[step]
            node = self.nodes[step]
            if before is not None:
                before(node, ins, outs)
            try:
                kernel(ins, outs, attrs, rt)
            except TodkitError:
                raise
            except Exception as e:
                raise self._failure(step, e) from e
            if after is not None:
                after(node, ins, outs)

    def _failure(self, step: int, e: Exception) -> OpExecuteError:
        node = self.nodes[step]
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.bound[step][1])
        return OpExecuteError(f"node {node.name!r} ({node.op}) failed on inputs [{shapes}]: "
                              f"{type(e).__name__}: {e}")
