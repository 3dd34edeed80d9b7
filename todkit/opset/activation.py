"""Activations and their MindSpore gradient ops: ReLU/ReluGrad, Sigmoid/SigmoidGrad,
Tanh/TanhGrad. Gradients are expressed through the forward output ``y``, as MindSpore does,
so the backward pass does not need the forward input."""

from __future__ import annotations

import functools

import numpy as np

from todkit.opset.registry import OpDef, op
from todkit.opset.rules import float_like, pair_of_same

# ``np.maximum(x, 0)`` on a large array takes NumPy's scalar-operand loop, ~3x slower than
# the same maximum of rows against a row of zeros (W2's [32, 24, 24, 6]: 36 -> 14 us; same
# bits, signed zeros and NaN included); small arrays keep the one plain call.
_ROW = 1024
_ROWS_MIN = 4 * _ROW


@functools.lru_cache(maxsize=8)
def _zeros_row(dtype: np.dtype) -> np.ndarray:
    row = np.zeros(_ROW, dtype)
    row.flags.writeable = False
    return row


def _relu_rows(x: np.ndarray, out: np.ndarray) -> None:
    n = x.size
    if not (x.flags.c_contiguous and out.flags.c_contiguous):
        np.maximum(x, 0, out=out)
        return
    k = n - n % _ROW
    xf, of = x.reshape(-1), out.reshape(-1)
    np.maximum(xf[:k].reshape(-1, _ROW), _zeros_row(x.dtype), out=of[:k].reshape(-1, _ROW))
    if k < n:
        np.maximum(xf[k:], 0, out=of[k:])


@op
class ReLU(OpDef):
    inplace = {0: 0}
    infer = float_like

    def kernel(ins, outs, a, rt):
        x = ins[0]
        if x.size < _ROWS_MIN:
            np.maximum(x, 0, out=outs[0])
        else:
            _relu_rows(x, outs[0])

    def grad(g, node, douts):
        (dy,) = douts
        (x,) = node.inputs
        return [g.emit("ReluGrad", [dy, node.outputs[0]]) if g.wants(x) else None]


@op
class ReluGrad(OpDef):
    """dx = dy where y > 0 else 0 (inputs dy, y)."""

    inplace = {0: 0}

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        dy, y = ins
        np.multiply(dy, y > 0, out=outs[0])


@op
class Sigmoid(OpDef):
    inplace = {0: 0}
    infer = float_like

    def kernel(ins, outs, a, rt):
        out = outs[0]
        # 1 / (1 + exp(-x)) in place; exp overflows to inf for very negative x, giving 0.
        with np.errstate(over="ignore"):
            np.negative(ins[0], out=out)
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)

    def grad(g, node, douts):
        (dy,) = douts
        (x,) = node.inputs
        return [g.emit("SigmoidGrad", [node.outputs[0], dy]) if g.wants(x) else None]


@op
class SigmoidGrad(OpDef):
    """dx = dy * y * (1 - y) (inputs y, dy)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        y, dy = ins
        out = outs[0]
        np.subtract(1, y, out=out)
        out *= y
        out *= dy


@op
class Tanh(OpDef):
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.tanh(ins[0], out=outs[0])

    def grad(g, node, douts):
        (dy,) = douts
        (x,) = node.inputs
        return [g.emit("TanhGrad", [node.outputs[0], dy]) if g.wants(x) else None]


@op
class TanhGrad(OpDef):
    """dx = dy * (1 - y^2) (inputs y, dy)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        y, dy = ins
        out = outs[0]
        np.multiply(y, y, out=out)
        np.subtract(1, out, out=out)
        out *= dy


# -- piecewise activations whose gradients read the forward input x (MindSpore's
# ReLU6Grad / HSwishGrad / HSigmoidGrad take (dy, x)) --------------------------------------
@op
class ReLU6(OpDef):
    inplace = {0: 0}
    infer = float_like

    def kernel(ins, outs, a, rt):
        np.clip(ins[0], 0, 6, out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("ReLU6Grad", [douts[0], x]) if g.wants(x) else None]


@op
class ReLU6Grad(OpDef):
    """dx = dy where 0 < x < 6 else 0 (inputs dy, x)."""

    inplace = {0: 0}

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        dy, x = ins
        np.multiply(dy, (x > 0) & (x < 6), out=outs[0])


@op
class HSigmoid(OpDef):
    """relu6(x + 3) / 6."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        out = outs[0]
        np.add(ins[0], 3, out=out)
        np.clip(out, 0, 6, out=out)
        out /= 6

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("HSigmoidGrad", [douts[0], x]) if g.wants(x) else None]


@op
class HSigmoidGrad(OpDef):
    """dx = dy / 6 where -3 < x < 3 else 0 (inputs dy, x)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        dy, x = ins
        np.multiply(dy, (x > -3) & (x < 3), out=outs[0])
        outs[0] /= 6


@op
class HSwish(OpDef):
    """x * relu6(x + 3) / 6."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        out = outs[0]
        np.add(ins[0], 3, out=out)
        np.clip(out, 0, 6, out=out)
        out *= ins[0]
        out /= 6

    def grad(g, node, douts):
        (x,) = node.inputs
        return [g.emit("HSwishGrad", [douts[0], x]) if g.wants(x) else None]


@op
class HSwishGrad(OpDef):
    """dx = dy * (0 if x <= -3, 1 if x >= 3, (2x + 3) / 6 between) (inputs dy, x)."""

    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        dy, x = ins
        slope = np.where(x <= -3, 0, np.where(x >= 3, 1, (2 * x + 3) / 6)).astype(x.dtype)
        np.multiply(dy, slope, out=outs[0])


# -- GeLU: nn.GELU()'s default (approximate=True) exports the GeLU primitive and GeLUGrad(dy,
# x, y) (tests/fixtures/mindir_forms/gelu_tanh.mindir); approximate=False exports Erf arithmetic.
_GELU_K = np.sqrt(2.0 / np.pi)
_GELU_C = 0.044715


def _gelu_tanh(x: np.ndarray) -> np.ndarray:
    return np.tanh(x.dtype.type(_GELU_K) * (x + x.dtype.type(_GELU_C) * x * x * x))


@op
class GeLU(OpDef):
    """0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3))), the tanh approximation."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        x = ins[0]
        out = outs[0]
        np.add(_gelu_tanh(x), 1, out=out)
        out *= x
        out *= x.dtype.type(0.5)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [g.emit("GeLUGrad", [douts[0], x, node.outputs[0]])]


@op
class GeLUGrad(OpDef):
    """dx = dy * d/dx GeLU(x) (inputs dy, x, y; y is unused, as in MindSpore's CPU kernel)."""

    def infer(ins, a):
        dy, x, y = ins
        if not dy == x == y:
            raise ValueError(f"inputs must share one type: {dy}, {x}, {y}")
        return [x]

    def kernel(ins, outs, a, rt):
        dy, x, _ = ins
        dt = x.dtype.type
        t = _gelu_tanh(x)
        inner = dt(_GELU_K) * (1 + dt(3 * _GELU_C) * x * x)
        slope = dt(0.5) * (1 + t) + dt(0.5) * x * (1 - t * t) * inner
        np.multiply(dy, slope, out=outs[0])


# -- ELU: MindSpore 2.10 exports Elu(x, alpha) and EluGrad(dy, y) (tests/fixtures/reference/
# elu_momentum); Lite writes them as Activation / ActivationGrad of type ELU with alpha ------
@op
class Elu(OpDef):
    """y = x for x > 0, alpha * (exp(x) - 1) elsewhere."""

    attrs = {"alpha": 1.0}
    infer = float_like

    def kernel(ins, outs, a, rt):
        x, y = ins[0], outs[0]
        np.minimum(x, 0, out=y)
        np.expm1(y, out=y)
        y *= x.dtype.type(a["alpha"])
        np.copyto(y, x, where=x > 0)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [g.emit("EluGrad", [douts[0], node.outputs[0]], alpha=node.attrs["alpha"])]


@op
class EluGrad(OpDef):
    """dx = dy for y > 0, dy * (y + alpha) elsewhere (inputs dy, y: the forward output, whose
    y + alpha is alpha * exp(x) there)."""

    attrs = {"alpha": 1.0}
    infer = pair_of_same

    def kernel(ins, outs, a, rt):
        dy, y = ins
        out = outs[0]
        np.add(y, y.dtype.type(a["alpha"]), out=out)
        out *= dy
        np.copyto(out, dy, where=y > 0)
