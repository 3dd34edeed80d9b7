"""MindSpore's primitives (``ops.operations``): ``P.Reshape()(x, shape)`` and friends.

Every call goes through ``run``: while a graph is traced it adds one IR node in the current
cell scope; otherwise it runs the op's NumPy kernel at once (MindSpore's PyNative mode). The
constructor arguments and the non-tensor call arguments (Reshape's shape, ExpandDims' axis)
become the node's attributes, spelled as in docs/OPS.md.
"""

from __future__ import annotations

import numbers

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import TodkitError
from todkit.frontend import trace
from todkit.frontend.tensor import Tensor, TracedTensor
from todkit.ir.graph import TensorType
from todkit.opset.registry import get_op
from todkit.opset.runctx import RunContext

# Eager calls run what the cell asked for: layers pick the training form themselves (BatchNorm's
# is_training attribute, Dropout only called in training), so the run context must not veto it
# (kernels such as BatchNorm use batch statistics only when both say training).
_EAGER_RT = RunContext(training=True)


def _wrap(arr: np.ndarray) -> Tensor:
    t = Tensor.__new__(Tensor)
    t._data = arr
    return t


def run(op: str, args: list, attrs: dict):
    """Run or trace ``op`` on ``args`` (tensors, Parameters, arrays or Python numbers; numbers
    take the dtype of the first tensor argument). Returns a Tensor, or a tuple for ops with
    several outputs."""
    like = next((a for a in args if isinstance(a, Tensor)), None)
    tracer = trace.active()
    if tracer is not None:
        like_v = tracer.value_of(like) if like is not None else None
        ins = [tracer.value_of(a, like_v) for a in args]
        outs = [TracedTensor(v) for v in tracer.emit(op, ins, attrs)]
    else:
        outs = [_wrap(a) for a in _run_eager(op, [_eager_array(a, like) for a in args], attrs)]
    return outs[0] if len(outs) == 1 else tuple(outs)


def _eager_array(x, like) -> np.ndarray:
    if isinstance(x, TracedTensor):
        raise TypeError(f"{x!r} comes from a finished graph trace and has no value")
    if isinstance(x, Tensor):
        return x._data  # not a copy: ops that mutate (Assign, optimizers) update Parameters
    if isinstance(x, (numbers.Number, np.ndarray, np.generic)):
        return trace.as_array(x, like)
    raise TypeError(f"cannot use {type(x).__name__} as a tensor")


def _run_eager(op: str, ins: list[np.ndarray], attrs: dict) -> list[np.ndarray]:
    opdef = get_op(op)
    full = opdef.complete_attrs(attrs, where=op)
    types = opdef.infer_types([TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in ins],
                              full, where=op)
    outs = [np.empty(t.shape, t.dtype.np) for t in types]
    try:
        opdef.kernel(ins, outs, full, _EAGER_RT)
    except TodkitError:
        raise
    except Exception as e:
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in ins)
        raise RuntimeError(f"{op} failed on inputs [{shapes}]: {type(e).__name__}: {e}") from e
    return outs


def _pair(v, name: str) -> tuple[int, int]:
    if isinstance(v, numbers.Integral):
        return (int(v), int(v))
    v = tuple(int(d) for d in v)
    if len(v) == 2:
        return v
    if len(v) == 4 and v[:2] == (1, 1):  # MindSpore's (1, 1, h, w) spelling
        return v[2:]
    raise ValueError(f"{name} must be an int or a pair, got {v}")


class Primitive:
    """A callable MindSpore primitive; ``self.attrs`` are its IR attributes."""

    op: str = ""

    def __init__(self, **attrs):
        self.attrs = attrs

    @property
    def name(self) -> str:
        return self.op or type(self).__name__

    def __call__(self, *args):
        return run(self.name, list(args), dict(self.attrs))

    def __repr__(self) -> str:
        return f"Prim[{self.name}]{self.attrs or ''}"


class _NoAttrs(Primitive):
    def __init__(self):
        super().__init__()


class ReLU(_NoAttrs):
    pass


class Sigmoid(_NoAttrs):
    pass


class Tanh(_NoAttrs):
    pass


class Flatten(_NoAttrs):
    pass


class Add(_NoAttrs):
    pass


class Sub(_NoAttrs):
    pass


class Mul(_NoAttrs):
    pass


class RealDiv(_NoAttrs):
    pass


Div = RealDiv


class SoftmaxCrossEntropyWithLogits(_NoAttrs):
    """(logits, labels) -> (loss [N], backprop [N, C])."""


class Assign(_NoAttrs):
    """Assign(ref, value): writes value into the Parameter ``ref``."""


class AssignAdd(_NoAttrs):
    pass


class AddN(Primitive):
    """AddN()(tuple_of_tensors)."""

    def __init__(self):
        super().__init__()

    def __call__(self, inputs):
        return run("AddN", list(inputs), {})


class MatMul(Primitive):
    def __init__(self, transpose_a=False, transpose_b=False):
        super().__init__(transpose_a=bool(transpose_a), transpose_b=bool(transpose_b))


class BiasAdd(Primitive):
    def __init__(self, data_format="NCHW"):
        super().__init__(data_format=data_format)


class Reshape(Primitive):
    def __init__(self):
        super().__init__()

    def __call__(self, x, shape):
        shape = (int(shape),) if isinstance(shape, numbers.Integral) else tuple(map(int, shape))
        return run("Reshape", [x], {"shape": shape})


class ExpandDims(Primitive):
    def __init__(self):
        super().__init__()

    def __call__(self, x, axis):
        return run("ExpandDims", [x], {"axis": int(axis)})


class Transpose(Primitive):
    def __init__(self):
        super().__init__()

    def __call__(self, x, perm):
        return run("Transpose", [x], {"perm": tuple(int(p) for p in perm)})


class Shape(Primitive):
    """The static shape as a tuple (no node, as MindSpore folds it at compile time)."""

    def __init__(self):
        super().__init__()

    def __call__(self, x):
        return tuple(x.shape)


class SparseSoftmaxCrossEntropyWithLogits(Primitive):
    def __init__(self, is_grad=False):
        super().__init__(is_grad=bool(is_grad))


def same_pads(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """TensorFlow-style 'same' padding as MindSpore resolves it: the extra row goes last."""
    out = -(-size // stride)
    need = max(0, (out - 1) * stride + (k - 1) * dilation + 1 - size)
    return need // 2, need - need // 2


class Conv2D(Primitive):
    """``Conv2D(out_channel, kernel_size, mode=1, pad_mode='valid', pad=0, stride=1,
    dilation=1, group=1, data_format='NCHW')(x, w)``; ``pad_list`` is resolved per call."""

    def __init__(self, out_channel, kernel_size, mode=1, pad_mode="valid", pad=0, stride=1,
                 dilation=1, group=1, data_format="NCHW"):
        if data_format != "NCHW":
            raise NotImplementedError("Conv2D supports data_format='NCHW' only")
        pad_mode = pad_mode.lower()
        if pad_mode not in ("valid", "same", "pad"):
            raise ValueError(f"pad_mode must be 'valid', 'same' or 'pad', got {pad_mode!r}")
        pad = (int(pad),) * 4 if isinstance(pad, numbers.Integral) else tuple(map(int, pad))
        if len(pad) != 4:
            raise ValueError(f"pad must be an int or 4 ints (top, bottom, left, right): {pad}")
        if pad_mode != "pad" and any(pad):
            raise ValueError(f"pad must be 0 when pad_mode is {pad_mode!r}")
        super().__init__(out_channel=int(out_channel),
                         kernel_size=_pair(kernel_size, "kernel_size"), mode=int(mode),
                         pad_mode=pad_mode, stride=_pair(stride, "stride"),
                         dilation=_pair(dilation, "dilation"), group=int(group),
                         format="NCHW")
        self.pad = pad

    def __call__(self, x, w):
        a = dict(self.attrs)
        if a["pad_mode"] == "same":
            (kh, kw), (sh, sw), (dh, dw) = a["kernel_size"], a["stride"], a["dilation"]
            a["pad_list"] = same_pads(x.shape[2], kh, sh, dh) + same_pads(x.shape[3], kw, sw, dw)
        else:
            a["pad_list"] = self.pad
        return run("Conv2D", [x, w], a)


class MaxPool(Primitive):
    def __init__(self, kernel_size=1, strides=1, pad_mode="valid", data_format="NCHW"):
        if data_format != "NCHW":
            raise NotImplementedError("MaxPool supports data_format='NCHW' only")
        pad_mode = pad_mode.lower()
        if pad_mode not in ("valid", "same"):
            raise ValueError(f"MaxPool pad_mode must be 'valid' or 'same', got {pad_mode!r}")
        super().__init__(kernel_size=_pair(kernel_size, "kernel_size"),
                         strides=_pair(strides, "strides"), pad_mode=pad_mode, format="NCHW")


class Adam(Primitive):
    """(param, m, v, beta1_power, beta2_power, lr, beta1, beta2, eps, grad), in place."""

    def __init__(self, use_locking=False, use_nesterov=False):
        super().__init__(use_locking=bool(use_locking), use_nesterov=bool(use_nesterov))


class ApplyMomentum(Primitive):
    """(variable, accumulation, learning_rate, gradient, momentum), in place."""

    def __init__(self, use_nesterov=False, use_locking=False, gradient_scale=1.0):
        super().__init__(use_nesterov=bool(use_nesterov), use_locking=bool(use_locking),
                         gradient_scale=float(gradient_scale))


class SGD(Primitive):
    """(parameters, gradient, learning_rate, accum, momentum, stat), in place."""

    def __init__(self, dampening=0.0, weight_decay=0.0, nesterov=False):
        super().__init__(dampening=float(dampening), weight_decay=float(weight_decay),
                         nesterov=bool(nesterov))


# The rest of MindSpore's primitives live in primitives_ext (imported last: it builds on the
# classes above); ``P.Concat`` and friends resolve through this module.
from todkit.frontend.primitives_ext import (  # noqa: E402
    GELU,
    Abs,
    AdamWeightDecay,
    AvgPool,
    BatchNorm,
    BCEWithLogitsLoss,
    BinaryCrossEntropy,
    Cast,
    Concat,
    Dropout,
    Dropout2D,
    Elu,
    Exp,
    Gather,
    GeLU,
    HSigmoid,
    HSwish,
    LayerNorm,
    Log,
    LogSoftmax,
    Maximum,
    Minimum,
    Neg,
    NLLLoss,
    OneHot,
    Pad,
    Pow,
    ReduceMean,
    ReduceSum,
    ReLU6,
    SigmoidCrossEntropyWithLogits,
    SiLU,
    SmoothL1Loss,
    Softmax,
    Sqrt,
    Square,
    Squeeze,
)

EXTENDED = (GELU, Abs, AdamWeightDecay, AvgPool, BatchNorm, BCEWithLogitsLoss, BinaryCrossEntropy,
            Cast, Concat, Dropout, Dropout2D, Elu, Exp, Gather, GeLU, HSigmoid, HSwish, LayerNorm,
            Log, LogSoftmax,
            Maximum, Minimum,
            Neg, NLLLoss, OneHot, Pad, Pow, ReduceMean, ReduceSum, ReLU6,
            SigmoidCrossEntropyWithLogits, SiLU, SmoothL1Loss, Softmax, Sqrt, Square, Squeeze)
