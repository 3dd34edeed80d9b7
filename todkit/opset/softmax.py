"""Softmax (``axis`` tuple, MindSpore's default (-1,)) and LogSoftmax (``axis`` int, -1).

Softmax's gradient is MindSpore's bprop: ``dx = (dy - ReduceSum(dy * y, axis, keep_dims)) * y``.
LogSoftmax's is ``dx = dy - Exp(y) * ReduceSum(dy, axis, keep_dims)``, in plain ops: MindSpore
emits LogSoftmaxGrad there, which MindSpore Lite has no kernel for.
"""

from __future__ import annotations

import numpy as np

from todkit.opset.registry import OpDef, op


def _axes(ndim: int, axis) -> tuple[int, ...]:
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(int(v) for v in axis)
    if not axis or any(not -ndim <= v < ndim for v in axis):
        raise ValueError(f"axis {list(axis)} is out of range for rank {ndim}")
    return tuple(sorted(v % ndim for v in axis))


def _infer(ins, a):
    (x,) = ins
    if x.dtype.np.kind != "f":
        raise ValueError(f"needs a float input, got {x.dtype.name}")
    _axes(len(x.shape), a["axis"])
    return [x]


def _log_softmax_into(x, axes, out):
    np.subtract(x, x.max(axis=axes, keepdims=True), out=out)
    out -= np.log(np.exp(out).sum(axis=axes, keepdims=True))


@op
class Softmax(OpDef):
    attrs = {"axis": (-1,)}
    infer = _infer

    def kernel(ins, outs, a, rt):
        out = outs[0]
        _log_softmax_into(ins[0], _axes(ins[0].ndim, a["axis"]), out)
        np.exp(out, out=out)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        (dy,), y = douts, node.outputs[0]
        axes = _axes(len(x.type.shape), node.attrs["axis"])
        s = g.emit("ReduceSum", [g.emit("Mul", [dy, y])], axis=axes, keep_dims=True)
        return [g.emit("Mul", [g.emit("Sub", [dy, s]), y])]


@op
class LogSoftmax(OpDef):
    attrs = {"axis": -1}
    infer = _infer

    def kernel(ins, outs, a, rt):
        _log_softmax_into(ins[0], _axes(ins[0].ndim, a["axis"]), outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        (dy,), y = douts, node.outputs[0]
        axes = _axes(len(x.type.shape), node.attrs["axis"])
        s = g.emit("ReduceSum", [dy], axis=axes, keep_dims=True)
        return [g.emit("Sub", [dy, g.emit("Mul", [g.emit("Exp", [y]), s])])]
