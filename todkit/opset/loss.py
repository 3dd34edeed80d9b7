"""Softmax cross-entropy losses, dense and sparse, with MindSpore's gradient forms."""

from __future__ import annotations

import functools

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.registry import WORKSPACE_FILLED, OpDef, op


def _log_softmax(logits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, written into ``out``."""
    # ufunc.reduce directly: the ndarray methods add a Python-level wrapper per call.
    np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True), out=out)
    lse = np.log(np.add.reduce(np.exp(out), axis=1, keepdims=True))
    out -= lse
    return out


_add_reduce = np.add.reduce


@functools.lru_cache(maxsize=64)
def _row_starts(n: int, c: int) -> np.ndarray:
    """Flat index of each row's first element of an [n, c] array (read-only, shared)."""
    starts = np.arange(n, dtype=np.int64) * c
    starts.flags.writeable = False
    return starts


@functools.lru_cache(maxsize=64)
def _classes(c: int, dtype: np.dtype) -> np.ndarray:
    """[0, c) as a row in the labels' dtype when it holds c (a same-type compare is one
    plain loop), else int64 (read-only, shared)."""
    info = np.iinfo(dtype)
    classes = np.arange(c, dtype=dtype if info.max >= c - 1 else np.int64)
    classes.flags.writeable = False
    return classes


def _one_hot(labels: np.ndarray, hot: np.ndarray, c: int) -> None:
    """``hot[i, j] = labels[i] == j``; raises on a label outside [0, c). A label in range
    sets exactly one entry of its row, one outside none, so counting the mask is the range
    check (cheaper than a reduction over the labels)."""
    n = labels.shape[0]
    np.equal(labels.reshape(n, 1), _classes(c, labels.dtype), out=hot)
    if np.count_nonzero(hot) != n:
        raise ValueError(f"labels must lie in [0, {c}), got values in "
                         f"[{labels.min()}, {labels.max()}]")


def _log_softmax_rows(logits: np.ndarray, out: np.ndarray, row: np.ndarray,
                      arg: np.ndarray, scratch: np.ndarray) -> None:
    """``_log_softmax`` of [N, C] ``logits`` into ``out`` with no temporaries: ``row`` [N]
    (float) and ``arg`` [N] (int64) hold the row maxima and their positions, ``scratch``
    [N, C] the exponentials. The same values as ``_log_softmax`` (the maximum is exact)."""
    n, c = logits.shape
    # argmax then a gather is 2x faster than a max-reduction along short rows (W1's
    # [32, 10]: 1.1 against 2.0 us); a NaN row gives NaN either way.
    logits.argmax(axis=1, out=arg)
    np.add(arg, _row_starts(n, c), out=arg)
    logits.reshape(-1).take(arg, out=row)
    col = row.reshape(n, 1)
    np.subtract(logits, col, out=out)
    np.exp(out, out=scratch)
    _add_reduce(scratch, axis=1, out=row)
    np.log(row, out=row)
    out -= col


def _sparse_ce_scratch(logits: np.ndarray, is_grad: bool) -> list[np.ndarray]:
    """The workspaces of a call made without them (tools calling the kernel directly)."""
    types = SparseSoftmaxCrossEntropyWithLogits.workspace_types(
        [TensorType(logits.shape, dtypes.from_numpy(logits.dtype))], {"is_grad": is_grad})
    return [np.empty(t.shape, t.dtype.np) for t in types]


def _check_logits(logits):
    if len(logits.shape) != 2:
        raise ValueError(f"logits must be [N, C], got {list(logits.shape)}")
    if logits.dtype.np.kind != "f":
        raise ValueError(f"logits must be float, got {logits.dtype.name}")


@op
class SoftmaxCrossEntropyWithLogits(OpDef):
    """loss[N] = -sum(labels * log_softmax(logits)); backprop[N, C] = softmax - labels."""

    def infer(ins, a):
        logits, labels = ins
        _check_logits(logits)
        if labels != logits:
            raise ValueError(f"labels {labels} must match logits {logits}")
        n = logits.shape[0]
        return [TensorType((n,), logits.dtype), logits]

    def kernel(ins, outs, a, rt):
        logits, labels = ins
        loss, backprop = outs
        logp = _log_softmax(logits, backprop)
        np.sum(labels * logp, axis=1, out=loss)
        np.negative(loss, out=loss)
        np.exp(logp, out=backprop)
        backprop -= labels

    def grad(g, node, douts):
        dloss = douts[0]  # MindSpore's rule ignores a gradient reaching ``backprop``
        logits = node.inputs[0]
        if dloss is None or not g.wants(logits):
            return [None, None]
        # No label gradient: labels are data (MindSpore returns zeros for them).
        scale = g.emit("ExpandDims", [dloss], axis=-1)
        return [g.emit("Mul", [node.outputs[1], scale]), None]


@op
class SparseSoftmaxCrossEntropyWithLogits(OpDef):
    """is_grad=False: mean over the batch of -log_softmax(logits)[i, label_i], shape ().
    is_grad=True: its gradient w.r.t. logits, (softmax - onehot) / N, shape [N, C]."""

    attrs = {"is_grad": False}

    def infer(ins, a):
        logits, labels = ins
        _check_logits(logits)
        if labels.shape != logits.shape[:1] or labels.dtype.np.kind not in "iu":
            raise ValueError(f"labels must be integer [{logits.shape[0]}], got {labels}")
        return [logits if a["is_grad"] else TensorType((), logits.dtype)]

    def kernel(ins, outs, a, rt):
        logits, labels = ins
        n, c = logits.shape
        # Workspaces 0 and 1 hold log_softmax(logits) and the labels' one-hot mask; the loss
        # and its is_grad node share them in the device runtime (workspace_key): the second
        # one to run finds them filled. 2 and 3 are this call's row scratch; the exp
        # scratch (4) is the gradient itself when there is one.
        ws = outs[1:] if len(outs) > 1 else _sparse_ce_scratch(logits, a["is_grad"])
        logp, hot = ws[0], ws[1]
        if 0 not in a.get(WORKSPACE_FILLED, ()):
            _one_hot(labels, hot, c)
            _log_softmax_rows(logits, logp, ws[2], ws[3],
                              outs[0] if a["is_grad"] else ws[4])
        if a["is_grad"]:
            # As (softmax - onehot) / N computed in this order before (same bits), with the
            # one-hot subtract as one masked call instead of a fancy-index gather/scatter.
            grad = outs[0]
            np.exp(logp, out=grad)
            np.subtract(grad, 1, out=grad, where=hot)
            grad *= grad.dtype.type(1.0 / n)
        else:
            dt = logits.dtype.type
            outs[0][...] = -_add_reduce(logp, None, where=hot) / dt(n)

    def workspace(ins, a):
        logits = ins[0]
        n = logits.shape[0]
        rows = [TensorType((n,), logits.dtype), TensorType((n,), dtypes.int64)]
        return [logits, TensorType(logits.shape, dtypes.bool_)] + rows + (
            [] if a["is_grad"] else [logits])

    def workspace_key(node):
        logits, labels = node.inputs
        if logits.is_const:
            return {}
        return {0: ("log_softmax", id(logits), id(labels)),
                1: ("one_hot", id(logits), id(labels))}

    def grad(g, node, douts):
        (dloss,) = douts
        logits, labels = node.inputs
        if node.attrs["is_grad"]:
            raise NotImplementedError("the is_grad=True form has no gradient")
        if not g.wants(logits):
            return [None, None]
        dlogits = g.emit("SparseSoftmaxCrossEntropyWithLogits", [logits, labels], is_grad=True)
        # MindSpore feeds the is_grad output straight on when the sens is the usual ones.
        if not (dloss.data is not None and np.all(dloss.data == 1)):
            dlogits = g.emit("Mul", [dlogits, dloss])
        return [dlogits, None]


@op
class SigmoidCrossEntropyWithLogits(OpDef):
    """Element-wise loss = max(x, 0) - x * label + log(1 + exp(-|x|)) (the stable form);
    nn.BCEWithLogitsLoss's core in MindSpore 1.x and MindSpore Lite's loss op."""

    def infer(ins, a):
        x, label = ins
        if x != label or x.dtype.np.kind != "f":
            raise ValueError(f"logits {x} and labels {label} must be equal float types")
        return [x]

    def kernel(ins, outs, a, rt):
        x, label = ins
        out = outs[0]
        np.abs(x, out=out)
        np.negative(out, out=out)
        np.exp(out, out=out)
        np.log1p(out, out=out)
        out += np.maximum(x, 0)
        out -= x * label

    def grad(g, node, douts):
        x, label = node.inputs
        if not g.wants(x):
            return [None, None]
        return [g.emit("SigmoidCrossEntropyWithLogitsGrad", [x, label, douts[0]]), None]


@op
class SigmoidCrossEntropyWithLogitsGrad(OpDef):
    """dx = (sigmoid(x) - label) * dout (inputs x, label, dout)."""

    def infer(ins, a):
        x, label, dout = ins
        if not x == label == dout:
            raise ValueError(f"inputs must share one type: {x}, {label}, {dout}")
        return [x]

    def kernel(ins, outs, a, rt):
        x, label, dout = ins
        out = outs[0]
        with np.errstate(over="ignore"):
            np.negative(x, out=out)
            np.exp(out, out=out)
        out += 1
        np.reciprocal(out, out=out)
        out -= label
        out *= dout
