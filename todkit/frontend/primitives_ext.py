"""More of MindSpore's primitives: element-wise math, reductions, shape ops, BatchNorm,
pooling, dropout, the loss primitives and AdamWeightDecay. Signatures and attribute names are
MindSpore's; arguments MindSpore passes at call time (ReduceMean's axis, Cast's dtype, Concat's
tuple) become IR attributes, as docs/OPS.md keeps every attribute in ``Node.attrs``.

A primitive whose op the opset does not register yet fails when called, with the op's name
(``OpNotFoundError: unsupported op X``), not when it is built, so layers can be constructed
(parameter names, shapes, checkpoints) before every kernel exists.
"""

from __future__ import annotations

import numbers

from todkit.core import dtypes
from todkit.frontend.primitives import Primitive, _NoAttrs, _pair, run


def _axes(axis) -> tuple[int, ...]:
    if axis is None:
        return ()
    if isinstance(axis, numbers.Integral):
        return (int(axis),)
    return tuple(int(a) for a in axis)


# -- element-wise ------------------------------------------------------------------------
class ReLU6(_NoAttrs):
    pass


class GeLU(_NoAttrs):
    """MindSpore's primitive is spelled ``GeLU`` (``ops.GeLU``; ``nn.GELU`` uses it)."""


GELU = GeLU


class HSwish(_NoAttrs):
    pass


class HSigmoid(_NoAttrs):
    pass


class SiLU(_NoAttrs):
    pass


class Exp(_NoAttrs):
    pass


class Log(_NoAttrs):
    pass


class Sqrt(_NoAttrs):
    pass


class Neg(_NoAttrs):
    pass


class Square(_NoAttrs):
    pass


class Abs(_NoAttrs):
    pass


class Pow(_NoAttrs):
    pass


class Maximum(_NoAttrs):
    pass


class Minimum(_NoAttrs):
    pass


class Elu(Primitive):
    def __init__(self, alpha=1.0):
        super().__init__(alpha=float(alpha))


class LayerNorm(Primitive):
    """``LayerNorm(begin_norm_axis, begin_params_axis, epsilon)(x, gamma, beta)`` -> (y, mean,
    variance)."""

    def __init__(self, begin_norm_axis=1, begin_params_axis=1, epsilon=1e-7):
        super().__init__(begin_norm_axis=int(begin_norm_axis),
                         begin_params_axis=int(begin_params_axis), epsilon=float(epsilon))


class Softmax(Primitive):
    def __init__(self, axis=-1):
        super().__init__(axis=_axes(axis))


class LogSoftmax(Primitive):
    def __init__(self, axis=-1):
        super().__init__(axis=int(axis))


# -- reductions and shapes ---------------------------------------------------------------
class _Reduce(Primitive):
    """``ReduceX(keep_dims=False)(x, axis=())``; an empty axis reduces every axis."""

    def __init__(self, keep_dims=False):
        super().__init__(keep_dims=bool(keep_dims))

    def __call__(self, x, axis=()):
        return run(self.name, [x], {**self.attrs, "axis": _axes(axis)})


class ReduceMean(_Reduce):
    pass


class ReduceSum(_Reduce):
    pass


class Concat(Primitive):
    """``Concat(axis=0)((x1, x2, ...))``."""

    def __init__(self, axis=0):
        super().__init__(axis=int(axis))

    def __call__(self, inputs):
        return run("Concat", list(inputs), dict(self.attrs))


class Squeeze(Primitive):
    def __init__(self, axis=()):
        super().__init__(axis=_axes(axis))


class Cast(Primitive):
    """``Cast()(x, dtype)``: the target dtype is an attribute of the node."""

    def __init__(self):
        super().__init__()

    def __call__(self, x, dtype):
        # MindSpore's TypeId number (43 float32, 34 int32...), as both file formats store it.
        return run("Cast", [x], {"to": dtypes.as_dtype(dtype).ms_type_id})


class Pad(Primitive):
    """``Pad(paddings)``: ((before, after) per axis), zeros. The IR op keeps the pairs
    flattened (b0, a0, b1, a1, ...), as Lite's paddings tensor (docs/OPS.md)."""

    def __init__(self, paddings):
        pairs = tuple((int(a), int(b)) for a, b in paddings)
        if any(v < 0 for pair in pairs for v in pair):
            raise ValueError(f"Pad: paddings must be >= 0, got {pairs}")
        super().__init__(paddings=tuple(v for pair in pairs for v in pair))
        self.paddings = pairs


class Gather(Primitive):
    """``Gather()(params, indices, axis)``."""

    def __init__(self):
        super().__init__()

    def __call__(self, params, indices, axis):
        return run("Gather", [params, indices], {"axis": int(axis)})


class OneHot(Primitive):
    """``OneHot(axis=-1)(indices, depth, on_value, off_value)``."""

    def __init__(self, axis=-1):
        super().__init__(axis=int(axis))

    def __call__(self, indices, depth, on_value, off_value):
        return run("OneHot", [indices, on_value, off_value], {**self.attrs, "depth": int(depth)})


# -- nn ----------------------------------------------------------------------------------
class BatchNorm(Primitive):
    """``BatchNorm(is_training=False, epsilon=1e-5, momentum=0.1, data_format='NCHW')``
    (x, gamma, beta, mean, variance) -> (y, batch_mean, batch_var, reserve_1, reserve_2).
    Training mode updates mean and variance in place: moving = (1-momentum)*moving +
    momentum*batch."""

    def __init__(self, is_training=False, epsilon=1e-5, momentum=0.1, data_format="NCHW"):
        if data_format != "NCHW":
            raise NotImplementedError("BatchNorm supports data_format='NCHW' only")
        super().__init__(is_training=bool(is_training), epsilon=float(epsilon),
                         momentum=float(momentum), data_format="NCHW")


class AvgPool(Primitive):
    def __init__(self, kernel_size=1, strides=1, pad_mode="valid", data_format="NCHW"):
        if data_format != "NCHW":
            raise NotImplementedError("AvgPool supports data_format='NCHW' only")
        pad_mode = pad_mode.lower()
        if pad_mode not in ("valid", "same"):
            raise ValueError(f"AvgPool pad_mode must be 'valid' or 'same', got {pad_mode!r}")
        super().__init__(kernel_size=_pair(kernel_size, "kernel_size"),
                         strides=_pair(strides, "strides"), pad_mode=pad_mode, format="NCHW")


class Dropout2D(Primitive):
    """``Dropout2D(keep_prob=0.5)(x) -> (y, mask)``: whole (sample, channel) planes dropped."""

    def __init__(self, keep_prob=0.5):
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"Dropout2D keep_prob must be in (0, 1], got {keep_prob}")
        super().__init__(keep_prob=float(keep_prob))


class Dropout(Primitive):
    """``Dropout(keep_prob=0.5, Seed0=0, Seed1=0)(x) -> (y, mask)``."""

    def __init__(self, keep_prob=0.5, Seed0=0, Seed1=0):
        if not 0.0 < float(keep_prob) <= 1.0:
            raise ValueError(f"Dropout keep_prob must be in (0, 1], got {keep_prob}")
        super().__init__(keep_prob=float(keep_prob), Seed0=int(Seed0), Seed1=int(Seed1))


# -- losses ------------------------------------------------------------------------------
def _check_reduction(where: str, reduction: str) -> str:
    if reduction not in ("none", "mean", "sum"):
        raise ValueError(f"{where}: reduction must be 'none', 'mean' or 'sum', got {reduction!r}")
    return reduction


class SmoothL1Loss(Primitive):
    def __init__(self, beta=1.0, reduction="none"):
        super().__init__(beta=float(beta), reduction=_check_reduction("SmoothL1Loss", reduction))


class BinaryCrossEntropy(Primitive):
    """(logits, labels, weight) with logits already probabilities."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction=_check_reduction("BinaryCrossEntropy", reduction))


class BCEWithLogitsLoss(Primitive):
    """(logits, label, weight, pos_weight)."""

    def __init__(self, reduction="mean"):
        super().__init__(reduction=_check_reduction("BCEWithLogitsLoss", reduction))


class SigmoidCrossEntropyWithLogits(_NoAttrs):
    pass


class NLLLoss(Primitive):
    """(logits [N, C] log-probabilities, labels int32 [N], weight [C]) -> (loss, total_weight)."""

    def __init__(self, reduction="mean", ignore_index=-100):
        super().__init__(reduction=_check_reduction("NLLLoss", reduction),
                         ignore_index=int(ignore_index))


# -- optimizers --------------------------------------------------------------------------
class AdamWeightDecay(Primitive):
    """(var, m, v, lr, beta1, beta2, epsilon, decay, gradient), in place."""

    def __init__(self, use_locking=False):
        super().__init__(use_locking=bool(use_locking))
