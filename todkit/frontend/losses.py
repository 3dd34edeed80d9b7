"""``nn.SoftmaxCrossEntropyWithLogits(sparse=False, reduction='none')`` as MindSpore 2.x
builds it: dense labels use the 2-output ``SoftmaxCrossEntropyWithLogits`` op (output 0 is the
per-sample loss), sparse labels with 'mean' use ``SparseSoftmaxCrossEntropyWithLogits``."""

from __future__ import annotations

import numpy as np

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell

_REDUCTIONS = ("none", "mean", "sum")


def _reduce(x, reduction: str):
    """Mean or sum of a per-sample loss [N] to a scalar. MindSpore uses ReduceMean/ReduceSum;
    the IR has no reduce op (docs/OPS.md), so a MatMul with a constant column computes the
    same sum and differentiates with existing rules."""
    if reduction == "none":
        return x
    n = x.shape[0]
    weight = np.full((n, 1), 1.0 / n if reduction == "mean" else 1.0, x.dtype.np)
    row = P.Reshape()(x, (1, n))
    return P.Reshape()(P.MatMul()(row, weight), ())


class LossBase(Cell):
    def __init__(self, reduction="mean"):
        super().__init__()
        if reduction not in _REDUCTIONS:
            raise ValueError(f"reduction must be one of {_REDUCTIONS}, got {reduction!r}")
        self.reduction = reduction

    def get_loss(self, x):
        return _reduce(x, self.reduction)


class SoftmaxCrossEntropyWithLogits(LossBase):
    def __init__(self, sparse=False, reduction="none"):
        super().__init__(reduction)
        self.sparse = bool(sparse)
        if self.sparse and reduction != "mean":
            # MindSpore one-hots the labels (OneHot), which the IR does not have.
            raise NotImplementedError(f"SoftmaxCrossEntropyWithLogits(sparse=True, "
                                      f"reduction={reduction!r}) needs OneHot, which todkit "
                                      "does not support; use reduction='mean' or dense labels")
        self.softmax_cross_entropy = P.SoftmaxCrossEntropyWithLogits()
        self.sparse_softmax_cross_entropy = P.SparseSoftmaxCrossEntropyWithLogits()

    def construct(self, logits, labels):
        if self.sparse:
            return self.sparse_softmax_cross_entropy(logits, labels)
        x = self.softmax_cross_entropy(logits, labels)[0]
        return self.get_loss(x)
