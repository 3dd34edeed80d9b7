"""Element-wise math: Sqrt (+SqrtGrad), Exp, Log, Maximum / Minimum (+ their Grad ops),
Square, Abs (+AbsGrad), Sign, Pow.

Gradient forms are MindSpore's bprops: Sqrt -> SqrtGrad(y, dy) = dy / (2y); Exp -> dy * y;
Log -> dy / x; Maximum / Minimum -> MaximumGrad / MinimumGrad(x, y, dy) -> (dx, dy), which
route dy to x where x wins (ties go to x, as MindSpore's CPU kernel ``x >= y``), then reduced
to each input's shape when broadcasting expanded it.
"""

from __future__ import annotations

import numpy as np

from todkit.opset.math import _broadcast_type, sum_to_shape
from todkit.opset.registry import OpDef, op
from todkit.opset.rules import float_like, pair_of_same


@op
class Sqrt(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.sqrt(ins[0], out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("SqrtGrad", [node.outputs[0], douts[0]]) if g.wants(x) else None]


@op
class SqrtGrad(OpDef):
    """dx = dy / (2 y) (inputs y, dy)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        y, dy = ins
        np.divide(dy, 2 * y, out=outs[0])


@op
class Exp(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.exp(ins[0], out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("Mul", [douts[0], node.outputs[0]]) if g.wants(x) else None]


@op
class Log(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.log(ins[0], out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("RealDiv", [douts[0], x]) if g.wants(x) else None]


def _extreme_grad(grad_op):
    def grad(g, node, douts):
        x, y = node.inputs
        wx, wy = g.wants(x), g.wants(y)
        if not (wx or wy):
            return [None, None]
        dx, dy = g.emit(grad_op, [x, y, douts[0]], grad_x=wx, grad_y=wy)
        return [sum_to_shape(g, dx, x.type.shape) if wx else None,
                sum_to_shape(g, dy, y.type.shape) if wy else None]
    return grad


def _extreme_grad_kernel(x_wins):
    def kernel(ins, outs, a, rt):
        x, y, dout = ins
        to_x = x_wins(x, y)
        np.multiply(dout, to_x, out=outs[0])
        np.multiply(dout, ~to_x, out=outs[1])
    return kernel


def _extreme_grad_infer(ins, a):
    x, y, dout = ins
    out = _broadcast_type([x, y])[0]
    if dout != out:
        raise ValueError(f"dout {dout} must be {out}")
    return [out, out]


@op
class Maximum(OpDef):
    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.maximum(ins[0], ins[1], out=outs[0])

    grad = _extreme_grad("MaximumGrad")


@op
class Minimum(OpDef):
    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.minimum(ins[0], ins[1], out=outs[0])

    grad = _extreme_grad("MinimumGrad")


@op
class MaximumGrad(OpDef):
    """(x, y, dout) -> (dx, dy) in the broadcast shape: dout where x >= y to x, else to y."""

    attrs = {"grad_x": True, "grad_y": True}
    infer = _extreme_grad_infer
    kernel = _extreme_grad_kernel(lambda x, y: np.greater_equal(x, y))


@op
class MinimumGrad(OpDef):
    """(x, y, dout) -> (dx, dy) in the broadcast shape: dout where x <= y to x, else to y."""

    attrs = {"grad_x": True, "grad_y": True}
    infer = _extreme_grad_infer
    kernel = _extreme_grad_kernel(lambda x, y: np.less_equal(x, y))


# -- Square / Abs (MSELoss, L1Loss) and Pow -----------------------------------------------
@op
class Square(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.multiply(ins[0], ins[0], out=outs[0])

    def grad(g, node, douts):
        # MindSpore 2.10 emits PowTensorScalar(x, 1) * 2 (Muls), which Lite lacks; the same
        # numbers in ops it has: dout * (x * 2).
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        two = g.const(np.array(2, x.type.dtype.np), name="Default/two")
        return [g.emit("Mul", [douts[0], g.emit("Mul", [x, two])])]


@op
class Abs(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.abs(ins[0], out=outs[0])

    def grad(g, node, douts):
        # MindSpore 2.10 emits Sign(x) * dout; Lite has no Sign but an AbsGrad kernel.
        (x,) = node.inputs
        return [g.emit("AbsGrad", [x, douts[0]]) if g.wants(x) else None]


@op
class Sign(OpDef):
    """-1, 0 or 1 by the sign of x (NaN stays NaN). MindSpore 2.10's L1Loss gradient is
    Mul(dout, Sign(x)); the converter writes that pair as Lite's AbsGrad
    (converter/lite_forms.py)."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        np.sign(ins[0], out=outs[0])

    def grad(g, node, douts):
        # zero almost everywhere: MindSpore's bprop gives zeros of x's shape
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        zero = g.const(np.zeros((), x.type.dtype.np), name="Default/zero")
        return [g.emit("FillV2", [zero], shape=tuple(x.type.shape))]


@op
class AbsGrad(OpDef):
    """dx = dout * sign(x) (inputs x, dout; 0 where x == 0)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        x, dout = ins
        np.sign(x, out=outs[0])
        outs[0] *= dout


@op
class Pow(OpDef):
    """x ** y with NumPy broadcasting (MindSpore's Pow: both operands tensors)."""

    def infer(ins, a):
        return _broadcast_type(ins)

    def kernel(ins, outs, a, rt):
        np.power(ins[0], ins[1], out=outs[0])

    def grad(g, node, douts):
        # MindSpore's bprop: dx = dout * y * x^(y-1), dy = dout * x^y * log(x) (its 2.10
        # export adds Select guards for x == 0, which Lite has no kernels for).
        x, y = node.inputs
        (dz,), z = douts, node.outputs[0]
        dx = dy = None
        if g.wants(x):
            one = g.const(np.array(1, y.type.dtype.np), name="Default/one")
            slope = g.emit("Mul", [y, g.emit("Pow", [x, g.emit("Sub", [y, one])])])
            dx = sum_to_shape(g, g.emit("Mul", [dz, slope]), x.type.shape)
        if g.wants(y):
            dy = g.emit("Mul", [dz, g.emit("Mul", [z, g.emit("Log", [x])])])
            dy = sum_to_shape(g, dy, y.type.shape)
        return [dx, dy]
