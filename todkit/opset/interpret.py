"""A plain reference interpreter: runs a graph node by node with fresh output arrays.

The front end's eager mode and the tests use it. The device runtime has its own executor
with a memory plan (``todkit/runtime``); both call the same kernels.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import InputTensorError, OpExecuteError, TodkitError
from todkit.ir.graph import Graph, Value
from todkit.opset.registry import get_op
from todkit.opset.runctx import RunContext


def run_node_kernel(node, ins: list[np.ndarray], outs: list[np.ndarray], rt: RunContext):
    """Call a node's kernel; a failure is raised again naming the node, op and shapes."""
    try:
        get_op(node.op).kernel(ins, outs, node.attrs, rt)
    except TodkitError:
        raise
    except Exception as e:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in ins)
        raise OpExecuteError(f"node {node.name!r} ({node.op}) failed on inputs [{shapes}]: "
                             f"{type(e).__name__}: {e}") from e


def interpret(graph: Graph, feeds: dict[Value, np.ndarray], rt: RunContext | None = None,
              outputs: list[Value] | None = None) -> list[np.ndarray]:
    """Run every node of ``graph`` in order; return the arrays of ``outputs`` (default: the
    graph outputs). Constants are used in place, so ops that mutate state update them."""
    rt = rt or RunContext()
    env: dict[int, np.ndarray] = {}
    for v in graph.inputs:
        if v not in feeds:
            raise InputTensorError(f"graph {graph.name!r}: no data for input {v.name!r}")
        arr = np.asarray(feeds[v])
        if arr.shape != v.type.shape or arr.dtype != v.type.dtype.np:
            raise InputTensorError(f"input {v.name!r} expects {v.type}, got "
                                   f"{arr.dtype}{list(arr.shape)}")
        env[id(v)] = arr
    for c in graph.consts:
        env[id(c)] = c.data
    for node in graph.nodes:
        ins = [env[id(v)] for v in node.inputs]
        outs = [np.empty(v.type.shape, v.type.dtype.np) for v in node.outputs]
        # Scratch the kernel declares: fresh here (the device runtime plans it in its arena).
        ws = get_op(node.op).workspace_types([v.type for v in node.inputs], node.attrs)
        run_node_kernel(node, ins, outs + [np.empty(t.shape, t.dtype.np) for t in ws], rt)
        for v, a in zip(node.outputs, outs):
            env[id(v)] = a
    return [env[id(v)] for v in (outputs if outputs is not None else graph.outputs)]
