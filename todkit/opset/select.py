"""Comparisons (Less, Greater, Equal and the rest), logical ops, Select and FillV2.

MindSpore 2.10's gradient of Maximum / Minimum (and so of nn.LeakyReLU, which it builds as
Maximum(x, alpha * x)) splits dout between the operands with these: where x and y tie each
gets dout / 2, elsewhere the larger (smaller) one all of it:
``Select(Equal(x, y), Divs(dout, 2), Select(Greater(x, y), dout, zeros))`` with the zeros a
FillV2 (tests/fixtures/reference/leakyrelu_momentum); its Pow gradient guards x == 0 with
GreaterEqual / LogicalAnd / Select. Lite has kernels for all of them (same names; FillV2 is
Lite's Fill).
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.math import _broadcast_type, sum_to_shape
from todkit.opset.registry import REQUIRED, OpDef, op


def _compare_type(ins, a) -> list[TensorType]:
    (out,) = _broadcast_type(ins)
    return [TensorType(out.shape, dtypes.bool_)]


def _binary(name: str, ufunc, infer, doc: str) -> type[OpDef]:
    """Register the element-wise op ``name``: ``ufunc(x, y)`` into the output. No gradient
    rule: a bool output carries no gradient (Select's rule gives its condition none), so the
    backward pass never asks one of these for one."""
    def kernel(ins, outs, a, rt):
        ufunc(ins[0], ins[1], out=outs[0])
    return op(type(name, (OpDef,), {"__doc__": doc, "infer": infer, "kernel": kernel}))


def _logical_type(ins, a) -> list[TensorType]:
    if any(t.dtype != dtypes.bool_ for t in ins):
        raise ValueError(f"needs bool inputs, got {', '.join(t.dtype.name for t in ins)}")
    return _broadcast_type(ins)


for _name, _ufunc, _sign in (("Less", np.less, "<"), ("Greater", np.greater, ">"),
                             ("Equal", np.equal, "=="), ("GreaterEqual", np.greater_equal, ">="),
                             ("LessEqual", np.less_equal, "<="),
                             ("NotEqual", np.not_equal, "!=")):
    _binary(_name, _ufunc, _compare_type,
            f"x {_sign} y, element-wise with broadcasting (a bool tensor).")
for _name, _ufunc, _word in (("LogicalAnd", np.logical_and, "and"),
                             ("LogicalOr", np.logical_or, "or")):
    _binary(_name, _ufunc, _logical_type, f"x {_word} y (bool tensors, broadcasting).")


@op
class LogicalNot(OpDef):
    """not x (a bool tensor)."""

    def infer(ins, a):
        (x,) = ins
        if x.dtype != dtypes.bool_:
            raise ValueError(f"needs a bool input, got {x.dtype.name}")
        return [x]

    def kernel(ins, outs, a, rt):
        np.logical_not(ins[0], out=outs[0])


@op
class Select(OpDef):
    """x where cond else y (cond bool; the three broadcast to one shape)."""

    def infer(ins, a):
        cond, x, y = ins
        if cond.dtype != dtypes.bool_:
            raise ValueError(f"cond must be bool, got {cond.dtype.name}")
        (out,) = _broadcast_type([x, y])
        try:
            shape = np.broadcast_shapes(cond.shape, out.shape)
        except ValueError:
            raise ValueError(f"cond {list(cond.shape)} does not broadcast with "
                             f"{list(out.shape)}") from None
        return [TensorType(shape, out.dtype)]

    def kernel(ins, outs, a, rt):
        cond, x, y = ins
        np.copyto(outs[0], y)
        np.copyto(outs[0], x, where=cond)

    def grad(g, node, douts):
        # MindSpore's bprop: the gradient goes to x where cond holds, to y elsewhere.
        cond, x, y = node.inputs
        (dz,) = douts
        zeros = g.emit("FillV2", [g.const(np.zeros((), dz.type.dtype.np), name="Default/zero")],
                       shape=tuple(dz.type.shape))
        dx = sum_to_shape(g, g.emit("Select", [cond, dz, zeros]), x.type.shape) \
            if g.wants(x) else None
        dy = sum_to_shape(g, g.emit("Select", [cond, zeros, dz]), y.type.shape) \
            if g.wants(y) else None
        return [None, dx, dy]


@op
class FillV2(OpDef):
    """A tensor of ``shape`` holding one value everywhere (input: the value, one number; the output
    has its dtype). MindSpore's FillV2 takes the shape as its first input; the IR keeps it as
    an attribute, as Lite's Fill keeps it as a constant input."""

    attrs = {"shape": REQUIRED}

    def infer(ins, a):
        (value,) = ins
        if value.size != 1:  # 0-d, or [1] as a .ms file may store a scalar
            raise ValueError(f"value must be one number, got {list(value.shape)}")
        shape = tuple(int(d) for d in a["shape"])
        if any(d < 0 for d in shape):
            raise ValueError(f"shape {list(shape)} has a negative extent")
        return [TensorType(shape, value.dtype)]

    def kernel(ins, outs, a, rt):
        outs[0][...] = ins[0]
