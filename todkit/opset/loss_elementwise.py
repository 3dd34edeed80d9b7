"""Losses with a ``reduction`` attribute ('none', 'mean', 'sum'), as MindSpore's primitives
compute them: SmoothL1Loss, BinaryCrossEntropy, NLLLoss, each with the Grad op MindSpore
2.10's bprop emits (tests/fixtures/mindir_forms/{smooth_l1_loss,bce_loss,
nll_loss_primitive}.mindir).

'none' keeps the element-wise (NLLLoss: per-sample) loss; 'mean' and 'sum' give a scalar (shape
()); the Grad ops take the gradient of whichever came out (``dout``) and spread it back.
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op

REDUCTIONS = ("none", "mean", "sum")
# MindSpore's BinaryCrossEntropy CPU kernel keeps its logs finite with this floor.
_BCE_EPS = 1e-12


def _reduction(a) -> str:
    r = a["reduction"]
    if r not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {r!r}")
    return r


def _reduced(x, a) -> TensorType:
    return x if _reduction(a) == "none" else TensorType((), x.dtype)


def _reduce_into(out, elementwise, a):
    r = a["reduction"]
    if r == "none":
        np.copyto(out, elementwise)
    else:
        total = elementwise.sum(dtype=elementwise.dtype)
        out[...] = total / elementwise.dtype.type(elementwise.size) if r == "mean" else total


def _spread(dout, like, a):
    """dout of the reduced loss as an element-wise factor shaped like ``like``."""
    if a["reduction"] == "none":
        return dout
    scale = dout.reshape(()) / (like.size if a["reduction"] == "mean" else 1)
    return like.dtype.type(scale)


def _same_float(*types):
    first = types[0]
    if first.dtype.np.kind != "f" or any(t != first for t in types[1:]):
        raise ValueError(f"inputs must be equal float types: {', '.join(map(str, types))}")


def _check_dout(dout, loss_type):
    # A scalar loss's dout may come as [1]: the converter writes scalar constants (the
    # backward pass's sens when the loss is the loss op's own output) with dims [1].
    scalar_as_one = loss_type.shape == () and dout.shape == (1,) and dout.dtype == loss_type.dtype
    if dout != loss_type and not scalar_as_one:
        raise ValueError(f"dout {dout} must be {loss_type}")


# -- SmoothL1Loss ------------------------------------------------------------------------------
@op
class SmoothL1Loss(OpDef):
    """0.5 d^2 / beta where |d| < beta, else |d| - 0.5 beta, d = logits - labels."""

    attrs = {"beta": 1.0, "reduction": "none"}

    def infer(ins, a):
        x, y = ins
        _same_float(x, y)
        if not a["beta"] > 0:
            raise ValueError(f"beta must be > 0, got {a['beta']}")
        return [_reduced(x, a)]

    def kernel(ins, outs, a, rt):
        x, y = ins
        beta = x.dtype.type(a["beta"])
        d = np.abs(x - y)
        elementwise = np.where(d < beta, x.dtype.type(0.5) * d * d / beta,
                               d - x.dtype.type(0.5) * beta)
        _reduce_into(outs[0], elementwise, a)

    def grad(g, node, douts):
        x, y = node.inputs
        dout = douts[0]
        # MindSpore's bprop: SmoothL1LossGrad(x, y, dout), and for the labels the same with
        # x and y swapped.
        return [g.emit("SmoothL1LossGrad", [x, y, dout], **node.attrs) if g.wants(x) else None,
                g.emit("SmoothL1LossGrad", [y, x, dout], **node.attrs) if g.wants(y) else None]


@op
class SmoothL1LossGrad(OpDef):
    """(x, y, dout) -> dx = clip((x - y) / beta, -1, 1) * dout (spread as the reduction)."""

    attrs = {"beta": 1.0, "reduction": "none"}

    def infer(ins, a):
        x, y, dout = ins
        _same_float(x, y)
        _check_dout(dout, _reduced(x, a))
        return [x]

    def kernel(ins, outs, a, rt):
        x, y, dout = ins
        beta = x.dtype.type(a["beta"])
        np.clip((x - y) / beta, -1, 1, out=outs[0])
        outs[0] *= _spread(dout, x, a)


# -- BinaryCrossEntropy ------------------------------------------------------------------------
@op
class BinaryCrossEntropy(OpDef):
    """-weight * (y log x + (1 - y) log(1 - x)) on probabilities x (inputs x, y, weight)."""

    attrs = {"reduction": "mean"}

    def infer(ins, a):
        x, y, w = ins
        _same_float(x, y, w)
        return [_reduced(x, a)]

    def kernel(ins, outs, a, rt):
        x, y, w = ins
        eps = x.dtype.type(_BCE_EPS)
        elementwise = -w * (y * np.log(np.maximum(x, eps))
                            + (1 - y) * np.log(np.maximum(1 - x, eps)))
        _reduce_into(outs[0], elementwise, a)

    def grad(g, node, douts):
        x, y, w = node.inputs
        if not g.wants(x):
            return [None, None, None]
        # MindSpore's bprop gives no gradient to labels and weight (zeros).
        return [g.emit("BinaryCrossEntropyGrad", [x, y, douts[0], w], **node.attrs), None, None]


@op
class BinaryCrossEntropyGrad(OpDef):
    """(x, y, dout, weight) -> dx = weight (x - y) / max(x (1 - x), eps) * dout."""

    attrs = {"reduction": "mean"}

    def infer(ins, a):
        x, y, dout, w = ins
        _same_float(x, y, w)
        _check_dout(dout, _reduced(x, a))
        return [x]

    def kernel(ins, outs, a, rt):
        x, y, dout, w = ins
        denom = np.maximum(x * (1 - x), x.dtype.type(_BCE_EPS))
        np.multiply(w, x - y, out=outs[0])
        outs[0] /= denom
        outs[0] *= _spread(dout, x, a)


# -- NLLLoss -----------------------------------------------------------------------------------
def _nll_picks(labels, weight, ignore_index):
    """Per-sample class weights (0 for ignored samples) and safe class indices."""
    keep = labels != ignore_index
    safe = np.where(keep, labels, 0)
    if safe.size and (safe.min() < 0 or safe.max() >= weight.size):
        raise ValueError(f"labels must lie in [0, {weight.size}) or equal ignore_index")
    return np.where(keep, weight[safe], 0).astype(weight.dtype), safe


@op
class NLLLoss(OpDef):
    """(logits [N, C] log-probabilities, labels int [N], weight [C]) -> (loss, total_weight):
    loss_i = -weight[l_i] logits[i, l_i] (0 where l_i == ignore_index); 'mean' divides the sum
    by total_weight = sum of the picked weights."""

    attrs = {"reduction": "mean", "ignore_index": -100}

    def infer(ins, a):
        logits, labels, w = ins
        if len(logits.shape) != 2 or logits.dtype.np.kind != "f":
            raise ValueError(f"logits must be float [N, C], got {logits}")
        n, c = logits.shape
        if labels.shape != (n,) or labels.dtype.np.kind not in "iu":
            raise ValueError(f"labels must be integer [{n}], got {labels}")
        if w != TensorType((c,), logits.dtype):
            raise ValueError(f"weight must be {logits.dtype.name} [{c}], got {w}")
        loss = TensorType((n,), logits.dtype) if _reduction(a) == "none" \
            else TensorType((), logits.dtype)
        return [loss, TensorType((), logits.dtype)]

    def kernel(ins, outs, a, rt):
        logits, labels, w = ins
        picked, safe = _nll_picks(labels, w, a["ignore_index"])
        per_sample = -picked * logits[np.arange(len(labels)), safe]
        total = picked.sum(dtype=w.dtype)
        loss, total_weight = outs
        total_weight[...] = total
        if a["reduction"] == "none":
            np.copyto(loss, per_sample)
        elif a["reduction"] == "sum":
            loss[...] = per_sample.sum(dtype=w.dtype)
        else:
            loss[...] = per_sample.sum(dtype=w.dtype) / total

    def grad(g, node, douts):
        logits, labels, w = node.inputs
        if not g.wants(logits) or douts[0] is None:
            return [None, None, None]
        return [g.emit("NLLLossGrad", [logits, douts[0], labels, w, node.outputs[1]],
                       **node.attrs), None, None]


@op
class NLLLossGrad(OpDef):
    """(logits, loss_grad, labels, weight, total_weight) -> dlogits: -weight[l_i] * dout at
    [i, l_i] (dout / total_weight for 'mean'), zeros elsewhere."""

    attrs = {"reduction": "mean", "ignore_index": -100}

    def infer(ins, a):
        logits, dout, _labels, _weight, total = ins
        n = logits.shape[0]
        want = TensorType((n,), logits.dtype) if _reduction(a) == "none" \
            else TensorType((), logits.dtype)
        _check_dout(dout, want)
        if total.size != 1:
            raise ValueError(f"total_weight must be a scalar, got {total}")
        return [logits]

    def kernel(ins, outs, a, rt):
        _logits, dout, labels, w, total = ins
        picked, safe = _nll_picks(labels, w, a["ignore_index"])
        if a["reduction"] == "mean":
            scale = dout.reshape(()) / total.reshape(())
        else:
            scale = dout if a["reduction"] == "none" else dout.reshape(())
        out = outs[0]
        out.fill(0)
        out[np.arange(len(labels)), safe] = -picked * scale
