"""Ops for MindSpore 2.10's nn.PReLU, nn.Mish (through Softplus) and nn.Dropout2d.

- ``Softplus(x)`` = log(1 + exp(x)), Lite's ``Activation{SOFTPLUS}``. Lite has no gradient
  kernel for it (its ActivationGrad takes RELU, RELU6, LEAKY_RELU, SIGMOID, TANH, HSWISH,
  HSIGMOID, ELU, GELU), so the gradient, and 2.10's ``SoftplusGrad(dy, x)``, is
  ``dy * Sigmoid(x)``. The kernel computes the exact value (``logaddexp(0, x)``): MindSpore
  2.10's CPU kernel evaluates log(1 + exp(x)) in float32, which rounds to 0 below x = -16.6
  (true value 6e-8) and is off by a few units of 1e-7 near there; Lite's nnacl kernel computes
  log1p(exp(x)) with exp clamped at x = 88.7, so it saturates at 88.7 for larger x.
- nn.Mish has no op here: Lite has no MISH activation, so 2.10's ``Mish(x)`` is read as
  ``x * Tanh(Softplus(x))`` (formats/mindir/lowered.LOWERED), which is also the form of
  2.10's own Mish gradient (Softplus, Tanh, TanhGrad, SoftplusGrad) and of todkit's nn.Mish.
  MindSpore 2.10's CPU Mish kernel returns NaN for x > 44.36 (its tanh overflows); todkit's
  form gives x there, the true value.
- ``PReLU(x, w)``: x > 0 ? x : w * x, with w of one value (shared) or one per channel (axis 1
  of x, MindSpore's rule; the last axis when ``data_format`` is NHWC, which only the converter
  sets, as Lite runs PReLUFusion NHWC). Lite's ``PReLUFusion{channel_shared}`` takes the slope
  as input 1 (2-D and 4-D x only when it is per channel: nnacl's GetChannel). Its gradient is
  MindSpore's ``PReLUGrad(dy, x, w)`` -> (dx, dw) with dx = x > 0 ? dy : w * dy and dw the
  sum of dy * x over x <= 0 and over every axis but the channel's (all axes for a shared w).
- ``Dropout2D(x)`` (x NCHW): each (sample, channel) plane is kept with probability keep_prob
  and scaled by 1 / keep_prob, else zeroed; outputs (y, mask) with mask bool of x's shape, as
  MindSpore's. Eval mode (or keep_prob 1) is the identity with a mask of ones. Its gradient
  is MindSpore's bprop: Cast(mask) * (dy * (1 / keep_prob)).

Lite has no kernel for PReLUGrad or Dropout2D: the converter writes them as ops it has
(``prelu_grad_for_lite`` / ``dropout2d_for_lite`` below, called by converter/lite_forms.py),
so todkit's own runtime never sees either in a ``.ms``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.dropout import check_keep
from todkit.opset.registry import OpDef, op
from todkit.opset.rules import float_like

# make(op, inputs, suffix, **attrs) -> the Value of a new node's output 0 (a gradient rule,
# a MINDIR lowering or a converter pass naming its nodes); const(array, suffix) -> a constant.
Make = Callable[..., object]
Const = Callable[[np.ndarray, str], object]


# -- Softplus ---------------------------------------------------------------------------------
def softplus_grad(make: Make, x, dout):
    """d softplus(x) = dout * sigmoid(x) with ops Lite has; the last node made is named with
    the empty suffix (a lowering gives it the file's name)."""
    return make("Mul", [dout, make("Sigmoid", [x], "Sigmoid")], "")


def mish(make: Make, x):
    """x * tanh(softplus(x)): nn.Mish in ops Lite has (Activation SOFTPLUS and TANH, Mul)."""
    return make("Mul", [x, make("Tanh", [make("Softplus", [x], "Softplus")], "Tanh")], "")


@op
class Softplus(OpDef):
    """y = log(1 + exp(x)), computed without overflow (Lite Activation{SOFTPLUS})."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        np.logaddexp(0, ins[0], out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [softplus_grad(lambda o, ins, _s: g.emit(o, ins), x, douts[0])]


# -- PReLU ------------------------------------------------------------------------------------
_LAYOUTS = ("NCHW", "NHWC")


def _channel_axis(x_type: TensorType, w_type: TensorType, a) -> int | None:
    """The axis of x the weight runs along, or None for a shared (one-value) weight; raises
    ValueError for a weight that fits neither."""
    fmt = a["data_format"]
    if fmt not in _LAYOUTS:
        raise ValueError(f"data_format must be NCHW or NHWC, got {fmt!r}")
    if len(w_type.shape) != 1:
        raise ValueError(f"the weight must be 1-D, got shape {list(w_type.shape)}")
    if w_type.shape[0] == 1:
        return None
    rank = len(x_type.shape)
    if rank < 2:
        raise ValueError(f"a weight of {w_type.shape[0]} values needs x of rank >= 2 (its "
                         f"channels), got shape {list(x_type.shape)}")
    axis = rank - 1 if fmt == "NHWC" else 1
    if x_type.shape[axis] != w_type.shape[0]:
        raise ValueError(f"the weight has {w_type.shape[0]} values, x {x_type.shape[axis]} "
                         f"channels (shape {list(x_type.shape)}, {fmt})")
    return axis


def _check_prelu_types(x: TensorType, w: TensorType) -> None:
    if not x.shape:
        raise ValueError("x must have at least one axis")
    if x.dtype.np.kind != "f" or w.dtype != x.dtype:
        raise ValueError(f"x and the weight must be of one float dtype, got {x.dtype.name} "
                         f"and {w.dtype.name}")


def _broadcast_weight(w: np.ndarray, ndim: int, axis: int | None) -> np.ndarray:
    """w as a view that broadcasts along ``axis`` of an ndim-D x."""
    if axis is None:
        return w.reshape(())
    return w.reshape((-1,) + (1,) * (ndim - 1 - axis))


@op
class PReLU(OpDef):
    """y = x > 0 ? x : w * x; w of one value or one per channel."""

    attrs = {"data_format": "NCHW"}

    def infer(ins, a):
        x, w = ins
        _check_prelu_types(x, w)
        _channel_axis(x, w, a)
        return [x]

    def kernel(ins, outs, a, rt):
        x, w = ins
        out = outs[0]
        axis = _channel_axis(TensorType(x.shape, dtypes.from_numpy(x.dtype)),
                             TensorType(w.shape, dtypes.from_numpy(w.dtype)), a)
        np.multiply(x, _broadcast_weight(w, x.ndim, axis), out=out)
        np.copyto(out, x, where=x > 0)

    def grad(g, node, douts):
        x, w = node.inputs
        if not (g.wants(x) or g.wants(w)):
            return [None, None]
        dx, dw = g.emit("PReLUGrad", [douts[0], x, w], data_format=node.attrs["data_format"])
        return [dx if g.wants(x) else None, dw if g.wants(w) else None]


@op
class PReLUGrad(OpDef):
    """(dy, x, w) -> (dx, dw): dx = x > 0 ? dy : w * dy; dw = the sum of dy * x where x <= 0
    over every axis but the weight's channel axis (all of them for a shared weight)."""

    attrs = {"data_format": "NCHW"}

    def infer(ins, a):
        dy, x, w = ins
        if dy != x:
            raise ValueError(f"dy {dy} and x {x} differ")
        _check_prelu_types(x, w)
        _channel_axis(x, w, a)
        return [x, w]

    def kernel(ins, outs, a, rt):
        dy, x, w = ins
        dx, dw = outs
        axis = _channel_axis(TensorType(x.shape, dtypes.from_numpy(x.dtype)),
                             TensorType(w.shape, dtypes.from_numpy(w.dtype)), a)
        positive = x > 0
        # dw first, with dx's buffer as scratch: dy * x on the slope's side (x <= 0)
        np.multiply(dy, x, out=dx)
        np.copyto(dx, 0, where=positive)
        axes = tuple(k for k in range(x.ndim) if k != axis)
        dw[...] = dx.sum(axis=axes).reshape(dw.shape)
        np.multiply(dy, _broadcast_weight(w, x.ndim, axis), out=dx)
        np.copyto(dx, dy, where=positive)


def prelu_grad_for_lite(make: Make, const: Const, dy, x, w, data_format: str = "NCHW",
                        want_dx: bool = True, want_dw: bool = True):
    """PReLUGrad(dy, x, w) in ops Lite has (it has no PReLU gradient kernel): positive =
    Greater(x, 0); dx = Select(positive, dy, dy * w'), w' being w Reshaped to broadcast along
    the channel axis; dw = ReduceSum(Select(positive, 0, dy * x)) over the other axes, Reshaped
    to w's shape. Returns (dx, dw), None for one not wanted; nodes are named by ``make``."""
    axis = _channel_axis(x.type, w.type, {"data_format": data_format})
    rank = len(x.type.shape)
    zero = const(np.zeros((), x.type.dtype.np), "zero")
    positive = make("Greater", [x, zero], "Greater")
    dx = dw = None
    if want_dx:
        slope = w  # shared (one value) or along the last axis: broadcasts as it is
        if axis is not None and axis != rank - 1:  # along axis 1 of NCHW: [C, 1, ..., 1]
            slope = make("Reshape", [w], "Reshape_w",
                         shape=(w.type.shape[0],) + (1,) * (rank - 1 - axis))
        dx = make("Select", [positive, dy, make("Mul", [dy, slope], "Mul_w")], "Select_dx")
    if want_dw:
        on_slope = make("Select", [positive, zero, make("Mul", [dy, x], "Mul_x")], "Select_dw")
        axes = tuple(k for k in range(rank) if k != axis)
        dw = make("ReduceSum", [on_slope], "ReduceSum", axis=axes, keep_dims=False)
        if dw.type.shape != w.type.shape:
            dw = make("Reshape", [dw], "Reshape_dw", shape=tuple(w.type.shape))
    return dx, dw


# -- Dropout2D --------------------------------------------------------------------------------
@op
class Dropout2D(OpDef):
    """x NCHW -> (y, mask bool): whole (sample, channel) planes kept with probability
    keep_prob (y = x / keep_prob there) or zeroed; identity with a mask of ones in eval mode."""

    attrs = {"keep_prob": 0.5}

    def infer(ins, a):
        (x,) = ins
        check_keep(a)
        if x.dtype.np.kind != "f":
            raise ValueError(f"needs a float input, got {x.dtype.name}")
        if len(x.shape) != 4:
            raise ValueError(f"needs a 4-D (NCHW) input, got shape {list(x.shape)}")
        return [x, TensorType(x.shape, dtypes.bool_)]

    def kernel(ins, outs, a, rt):
        x, (y, mask) = ins[0], outs
        keep = check_keep(a)
        if rt is not None and rt.training and keep < 1.0:
            # one draw per (sample, channel) plane, broadcast over H and W
            kept = (rt.rng.random(x.shape[:2]) < keep)[:, :, None, None]
            np.copyto(mask, kept)
            np.multiply(x, kept, out=y)
            y *= x.dtype.type(1.0 / keep)
        else:
            mask[...] = True
            np.copyto(y, x)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x) or douts[0] is None:
            return [None]
        dt = x.type.dtype
        scale = g.const(np.array(1.0 / check_keep(node.attrs), dt.np))
        mask = g.emit("Cast", [node.outputs[1]], to=dt.ms_type_id)
        return [g.emit("Mul", [mask, g.emit("Mul", [douts[0], scale])])]


def dropout2d_for_lite(make: Make, const: Const, x, keep_prob: float, with_mask: bool):
    """Dropout2D(x) in ops Lite has (it has no Dropout2D kernel): Lite's Dropout drawn over a
    constant of ones shaped [N, C, 1, 1] gives one scaled 0/1 per plane, which Mul broadcasts
    over H and W. Output 0 of that Dropout (ones * mask / keep in training, the ones in eval
    mode) is the factor, not its mask: Lite's kernel leaves the mask unwritten in eval mode.
    (Lite's Dropout kernel scales kept values by 1 / (1 - keep_prob), MindSpore's factor only
    for keep_prob 0.5; todkit's Dropout kernel scales by 1 / keep_prob, as MindSpore.)
    The bool mask (``with_mask``: only when something reads it) is Cast(Tile(mask)).
    Returns (y, mask or None)."""
    n, c, h, w = x.type.shape
    ones = const(np.ones((n, c, 1, 1), x.type.dtype.np), "ones")
    factor = make("Dropout", [ones], "Dropout", keep_prob=keep_prob)
    y = make("Mul", [x, factor], "Mul")
    if not with_mask:
        return y, None
    drop = factor.producer
    planes = drop.outputs[1]
    full = make("Tile", [planes], "Tile", multiples=(1, 1, h, w))
    return y, make("Cast", [full], "Cast", to=dtypes.bool_.ms_type_id)
