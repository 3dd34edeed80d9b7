"""Element-wise arithmetic: Add, Sub, Mul, RealDiv (NumPy broadcasting), AddN and Neg."""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op


def _broadcast_type(ins) -> list[TensorType]:
    x, y = ins
    if x.dtype != y.dtype:
        raise ValueError(f"operand dtypes differ ({x.dtype.name} vs {y.dtype.name})")
    try:
        shape = np.broadcast_shapes(x.shape, y.shape)
    except ValueError:
        raise ValueError(f"shapes {list(x.shape)} and {list(y.shape)} do not broadcast") from None
    return [TensorType(shape, x.dtype)]


def sum_to_shape(g, d, shape):
    """Sum gradient ``d`` over the axes that broadcasting expanded, giving ``shape``: as
    MindSpore's binop_grad_common, a ReduceSum (keep_dims False) over those axes, then a
    Reshape when the result still differs (size-1 axes of the input)."""
    shape = tuple(shape)
    out = d.type.shape
    if out == shape:
        return d
    padded = (1,) * (len(out) - len(shape)) + shape
    reduced = tuple(i for i in range(len(out)) if padded[i] == 1 and out[i] != 1)
    if reduced:
        d = g.emit("ReduceSum", [d], axis=reduced, keep_dims=False)
    if d.type.shape != shape:
        d = g.emit("Reshape", [d], shape=shape)
    return d


def _negate(g, d):
    return g.emit("Neg", [d])


@op
class Add(OpDef):
    inplace = {0: 0}

    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.add(ins[0], ins[1], out=outs[0])

    def grad(g, node, douts):
        (dz,) = douts
        x, y = node.inputs
        return [sum_to_shape(g, dz, x.type.shape) if g.wants(x) else None,
                sum_to_shape(g, dz, y.type.shape) if g.wants(y) else None]


@op
class Sub(OpDef):
    inplace = {0: 0}

    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.subtract(ins[0], ins[1], out=outs[0])

    def grad(g, node, douts):
        (dz,) = douts
        x, y = node.inputs
        dx = sum_to_shape(g, dz, x.type.shape) if g.wants(x) else None
        # MindSpore negates first, then reduces.
        dy = sum_to_shape(g, _negate(g, dz), y.type.shape) if g.wants(y) else None
        return [dx, dy]


@op
class Mul(OpDef):
    inplace = {0: 0}

    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.multiply(ins[0], ins[1], out=outs[0])

    def grad(g, node, douts):
        (dz,) = douts
        x, y = node.inputs
        dx = sum_to_shape(g, g.emit("Mul", [dz, y]), x.type.shape) if g.wants(x) else None
        dy = sum_to_shape(g, g.emit("Mul", [dz, x]), y.type.shape) if g.wants(y) else None
        return [dx, dy]


@op
class RealDiv(OpDef):
    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.divide(ins[0], ins[1], out=outs[0])

    def grad(g, node, douts):
        (dz,) = douts
        x, y = node.inputs
        (z,) = node.outputs
        # As MindSpore: bc_x = dz / y, bc_y = -bc_x * z.
        q = g.emit("RealDiv", [dz, y])
        dx = sum_to_shape(g, q, x.type.shape) if g.wants(x) else None
        dy = None
        if g.wants(y):
            dy = sum_to_shape(g, _negate(g, g.emit("Mul", [q, z])), y.type.shape)
        return [dx, dy]


@op
class AddN(OpDef):
    """Sum of same-shaped tensors (also what the autodiff driver uses to merge gradients)."""

    def infer(ins, a):
        if not ins:
            raise ValueError("AddN needs at least one input")
        first = ins[0]
        for t in ins[1:]:
            if t != first:
                raise ValueError(f"AddN inputs differ: {first} vs {t}")
        return [first]

    def kernel(ins, outs, a, rt):
        out = outs[0]
        if len(ins) == 1:
            np.copyto(out, ins[0])
            return
        np.add(ins[0], ins[1], out=out)
        for x in ins[2:]:
            out += x

    def grad(g, node, douts):
        (dz,) = douts
        return [dz if g.wants(v) else None for v in node.inputs]


@op
class Neg(OpDef):
    def infer(ins, a):
        return [ins[0]]

    def kernel(ins, outs, a, rt):
        np.negative(ins[0], out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("Neg", [douts[0]]) if g.wants(x) else None]
