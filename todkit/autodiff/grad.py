"""Reverse-mode differentiation on the IR, at export time (as MindSpore does).

``add_backward`` walks the forward nodes backwards from the loss and calls each op's gradient
rule, which emits ordinary IR nodes; the device later runs them as kernels and never
differentiates. Only nodes on a path from a requested parameter to the loss are
differentiated, so frozen layers get no backward nodes. Gradients that reach a value more
than once are summed with ``AddN``.
"""

from __future__ import annotations

import posixpath

import numpy as np

from todkit.ir.graph import Graph, Node, Value
from todkit.opset.build import emit
from todkit.opset.registry import get_op


class GradEmitter:
    """What a gradient rule sees as ``g``: emits nodes named under MindSpore's
    ``Gradients/<forward scope>/Grad_<Op>/`` scope."""

    def __init__(self, graph: Graph, depends: set[int] | None = None):
        self.graph = graph
        self.scope = "Gradients"
        self._depends = depends

    def wants(self, v: Value) -> bool:
        """Whether a gradient for ``v`` is needed (it depends on a differentiated parameter).
        Rules skip the others, so no backward node is emitted for data inputs or frozen layers."""
        return self._depends is None or id(v) in self._depends

    def emit(self, op: str, inputs: list[Value], **attrs):
        name = self.graph.scoped_name(self.scope, op)
        node = emit(self.graph, op, inputs, attrs, name=name)
        return node.outputs[0] if len(node.outputs) == 1 else list(node.outputs)

    def const(self, data, dtype=None, name: str = "Default/data") -> Value:
        return self.graph.add_const(name, np.asarray(data, dtype=dtype), unique=True)

    def _enter(self, fwd: Node) -> None:
        self.scope = f"Gradients/{posixpath.dirname(fwd.name)}/Grad_{fwd.op}".replace("//", "/")


def _needed_nodes(graph: Graph, loss: Value, wrt: list[Value]) -> tuple[set[int], set[int]]:
    """Nodes that lie on a path from one of ``wrt`` to ``loss``, and the values that depend
    on one of ``wrt``."""
    reaches_wrt: set[int] = set(map(id, wrt))  # values that depend on a wrt value
    fwd: set[int] = set()
    for n in graph.nodes:
        if any(id(v) in reaches_wrt for v in n.inputs):
            fwd.add(id(n))
            reaches_wrt.update(id(v) for v in n.outputs)
    needed: set[int] = set()
    feeds_loss: set[int] = {id(loss)}
    for n in reversed(graph.nodes):
        if id(n) in fwd and any(id(v) in feeds_loss for v in n.outputs):
            needed.add(id(n))
            feeds_loss.update(id(v) for v in n.inputs)
    return needed, reaches_wrt


def add_backward(graph: Graph, loss: Value, wrt: list[Value], sens: Value) -> dict[Value, Value]:
    """Append backward nodes for d(sum(sens * loss))/d(w) to ``graph``; return {w: grad}.

    Parameters with no path to the loss get no entry.
    """
    needed, depends = _needed_nodes(graph, loss, wrt)
    g = GradEmitter(graph, depends)
    grads: dict[int, list[Value]] = {id(loss): [sens]}
    forward = [n for n in graph.nodes if id(n) in needed]

    def total(v: Value) -> Value | None:
        parts = grads.get(id(v))
        if not parts:
            return None
        if len(parts) > 1:
            s = g.emit("AddN", parts)
            grads[id(v)] = [s]
            return s
        return parts[0]

    for node in reversed(forward):
        douts = [total(v) for v in node.outputs]
        if all(d is None for d in douts):
            continue
        opdef = get_op(node.op)
        if opdef.grad is None:
            raise NotImplementedError(f"op {node.op} (node {node.name!r}) has no gradient rule")
        g._enter(node)
        dins = opdef.grad(g, node, douts)
        if len(dins) != len(node.inputs):
            raise RuntimeError(f"gradient rule of {node.op} returned {len(dins)} gradients for "
                               f"{len(node.inputs)} inputs")
        for v, d in zip(node.inputs, dins):
            if d is None or not g.wants(v):
                continue
            if d.type.shape != v.type.shape:
                raise RuntimeError(f"gradient rule of {node.op} gave {d.type} for input "
                                   f"{v.name} of type {v.type}")
            grads.setdefault(id(v), []).append(d)
    g.scope = "Gradients"
    out = {}
    for w in wrt:
        d = total(w)
        if d is not None:
            out[w] = d
    return out
