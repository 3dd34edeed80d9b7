"""Losses as MindSpore 2.x's nn/loss/loss.py builds them.

``LossBase.get_loss`` reduces with ``ReduceMean``/``ReduceSum`` over every axis (MindSpore's
Cast to float32 and Mul by the weight 1.0 are no-ops for float32 and are not emitted).

``SoftmaxCrossEntropyWithLogits(sparse=False, reduction='none')``: dense labels use the
2-output ``SoftmaxCrossEntropyWithLogits`` op (output 0 is the per-sample loss); sparse labels
with 'mean' use ``SparseSoftmaxCrossEntropyWithLogits``; sparse with 'none'/'sum' one-hot the
labels first (``OneHot``), as MindSpore does.

Where MindSpore's own primitive has no MindSpore Lite kernel, the loss is built from ops that
have one (docs/OPS.md): ``SmoothL1Loss`` is the element-wise primitive then the reduction;
``BCEWithLogitsLoss`` is ``SigmoidCrossEntropyWithLogits`` (times ``weight``) then the
reduction, and with ``pos_weight`` MindSpore's formula in element-wise ops.
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.tensor import Tensor

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(x, reduction: str):
    if reduction == "none":
        return x
    op = P.ReduceMean() if reduction == "mean" else P.ReduceSum()
    return op(x, tuple(range(len(x.shape))))


class LossBase(Cell):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"{type(self).__name__}: reduction must be one of {_REDUCTIONS}, "
                             f"got {reduction!r}")
        self.reduction = reduction
        self.average = reduction == "mean"
        self.reduce = reduction != "none"

    def get_loss(self, x, weights=1.0):
        if not (isinstance(weights, float) and weights == 1.0):
            x = P.Mul()(weights, x)
        return _reduce(x, self.reduction)

    def construct(self, logits, labels):
        raise NotImplementedError(f"{type(self).__name__} does not define construct")


def _ones(like, name: str) -> Tensor:
    t = Tensor(np.ones(like.shape, like.dtype.np))
    t.const_name = name
    return t


class SoftmaxCrossEntropyWithLogits(LossBase):
    def __init__(self, sparse=False, reduction="none"):
        super().__init__(reduction)
        if not isinstance(sparse, bool):
            raise TypeError(f"SoftmaxCrossEntropyWithLogits: sparse must be a bool, got {sparse!r}")
        self.sparse = sparse
        self.softmax_cross_entropy = P.SoftmaxCrossEntropyWithLogits()
        self.sparse_softmax_cross_entropy = P.SparseSoftmaxCrossEntropyWithLogits()
        self.one_hot = P.OneHot()
        self.on_value = Tensor(np.float32(1.0), dtypes.float32)
        self.off_value = Tensor(np.float32(0.0), dtypes.float32)

    def construct(self, logits, labels):
        if self.sparse:
            if self.reduction == "mean":
                return self.sparse_softmax_cross_entropy(logits, labels)
            labels = self.one_hot(labels, logits.shape[-1], self.on_value, self.off_value)
        x = self.softmax_cross_entropy(logits, labels)[0]
        return self.get_loss(x)


class MSELoss(LossBase):
    """mean((logits - labels)^2): Sub, Square, then the reduction."""

    def construct(self, logits, labels):
        return self.get_loss(P.Square()(logits - labels))


class L1Loss(LossBase):
    """mean(|logits - labels|): Sub, Abs, then the reduction (MindSpore's ``ops.l1_loss``)."""

    def construct(self, logits, labels):
        return self.get_loss(P.Abs()(logits - labels))


class SmoothL1Loss(LossBase):
    """The ``SmoothL1Loss(beta, reduction)`` primitive; MindSpore's default reduction 'none'."""

    def __init__(self, beta=1.0, reduction="none"):
        super().__init__(reduction)
        if not beta > 0:
            raise ValueError(f"SmoothL1Loss: beta must be > 0, got {beta}")
        self.beta = float(beta)
        # Element-wise, then get_loss's reduction: Lite's SmoothL1Loss kernel has no reduction.
        self.smooth_l1_loss = P.SmoothL1Loss(self.beta, "none")

    def construct(self, logits, labels):
        return self.get_loss(self.smooth_l1_loss(logits, labels))


class BCELoss(LossBase):
    """The ``BinaryCrossEntropy(reduction)`` primitive on probabilities; ``weight`` rescales
    each element (ones when None)."""

    def __init__(self, weight=None, reduction="mean"):
        super().__init__(reduction)
        self.weight = weight
        self.binary_cross_entropy = P.BinaryCrossEntropy(reduction)

    def construct(self, logits, labels):
        weight = self.weight if self.weight is not None else _ones(logits, "weight")
        return self.binary_cross_entropy(logits, labels, weight)


class BCEWithLogitsLoss(LossBase):
    """Binary cross-entropy on logits. MindSpore's ``BCEWithLogitsLoss`` primitive has no Lite
    kernel, so: ``SigmoidCrossEntropyWithLogits`` (times ``weight`` when given), then the
    reduction. With ``pos_weight`` p, MindSpore's formula
    ``(1 - y) x + (1 + (p - 1) y) (log(1 + exp(-|x|)) + max(-x, 0))`` in element-wise ops
    (|x| as Maximum(x, -x): Lite has no .ms Abs row here)."""

    def __init__(self, reduction="mean", weight=None, pos_weight=None):
        super().__init__(reduction)
        self.weight, self.pos_weight = weight, pos_weight
        self.sigmoid_cross_entropy = P.SigmoidCrossEntropyWithLogits()

    def construct(self, logits, labels):
        if self.pos_weight is None:
            loss = self.sigmoid_cross_entropy(logits, labels)
        else:
            neg = P.Neg()(logits)
            softplus_neg = P.Log()(P.Exp()(P.Neg()(P.Maximum()(logits, neg))) + 1.0) + \
                P.Maximum()(neg, 0.0)
            log_weight = (self.pos_weight - 1.0) * labels + 1.0
            loss = (1.0 - labels) * logits + log_weight * softplus_neg
        if self.weight is not None:
            loss = P.Mul()(self.weight, loss)
        return self.get_loss(loss)


class NLLLoss(LossBase):
    """Negative log-likelihood of log-probabilities [N, C] with int32 labels [N]: the
    ``NLLLoss(reduction, ignore_index)`` primitive (output 0), class weights ones when None.
    MindSpore 2.x's functional ``nll_loss`` composes it from Gather-style ops instead; Lite
    and its converter know the ``NLLLoss`` primitive."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean"):
        super().__init__(reduction)
        if not isinstance(ignore_index, int):
            raise TypeError(f"NLLLoss: ignore_index must be an int, got {ignore_index!r}")
        self.weight, self.ignore_index = weight, ignore_index
        self.nll_loss = P.NLLLoss(reduction, ignore_index)

    def construct(self, logits, labels):
        if len(logits.shape) != 2:
            raise NotImplementedError(f"NLLLoss: logits must be [N, C], got {list(logits.shape)}")
        weight = self.weight if self.weight is not None else _ones(
            Tensor(np.zeros(logits.shape[1:], logits.dtype.np)), "weight")
        return self.nll_loss(logits, labels, weight)[0]


class CrossEntropyLoss(LossBase):
    """``nn.CrossEntropyLoss(weight=None, ignore_index=-100, reduction='mean',
    label_smoothing=0.0)`` for class-index labels: NLLLoss of the logits' LogSoftmax (the same
    numbers as MindSpore 2.10's GatherD / MaskedFill composite, in ops Lite has kernels for).
    Probability targets and label smoothing are not supported."""

    def __init__(self, weight=None, ignore_index=-100, reduction="mean", label_smoothing=0.0):
        super().__init__(reduction)
        if label_smoothing:
            raise NotImplementedError("CrossEntropyLoss: label_smoothing is not supported")
        self.log_softmax = P.LogSoftmax(-1)
        self.nll = NLLLoss(weight, ignore_index, reduction)

    def construct(self, logits, labels):
        if labels.dtype.np.kind == "f":
            raise NotImplementedError("CrossEntropyLoss: probability targets are not supported; "
                                      "give class indices")
        return self.nll(self.log_softmax(logits), labels)
