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


# Up to this many classes the one-hot mask is rows of a cached identity picked by the
# labels (1 MB at most); more classes compare the labels with [0, C).
_EYE_MAX = 1024


@functools.lru_cache(maxsize=16)
def _eye(c: int) -> np.ndarray:
    eye = np.eye(c, dtype=np.bool_)
    eye.flags.writeable = False
    return eye


def _unsigned(labels: np.ndarray) -> np.ndarray | None:
    """``labels`` seen as unsigned integers of the same size (a negative label becomes
    huge, so one bounds check covers both ends), or None for 64-bit labels, whose huge
    values NumPy's indexing refuses to cast rather than reporting out of bounds."""
    if labels.dtype.itemsize > 4:
        return None
    return labels.view(labels.dtype.str.replace("i", "u"))


def _range_error(labels: np.ndarray, c: int) -> ValueError:
    return ValueError(f"labels must lie in [0, {c}), got values in "
                      f"[{labels.min()}, {labels.max()}]")


def _one_hot(labels: np.ndarray, hot: np.ndarray, c: int) -> None:
    """``hot[i, j] = labels[i] == j``; raises on a label outside [0, c). Identity rows taken
    by the labels seen as unsigned (``take`` checks the bounds: 0.65 us on W1's [32, 10]
    against 1.2 for a broadcast compare and a count); else the compare, where a label in
    range sets exactly one entry of its row and one outside none, so counting the mask is
    the range check."""
    n = labels.shape[0]
    index = _unsigned(labels) if c <= _EYE_MAX else None
    if index is not None:
        try:
            _eye(c).take(index, axis=0, out=hot)
        except IndexError:
            raise _range_error(labels, c) from None
        return
    np.equal(labels.reshape(n, 1), _classes(c, labels.dtype), out=hot)
    if np.count_nonzero(hot) != n:
        raise _range_error(labels, c)


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
    np.subtract(out, col, out=out)  # the ufunc: ``out -= col`` dispatches through Python


def _sparse_ce_grad(logp: np.ndarray, hot: np.ndarray, grad: np.ndarray, inv_n) -> None:
    """(softmax - onehot) / N in the order it was computed before (same bits), the one-hot
    subtracted as the bool mask itself (True is 1, False 0: x - 0 is x) in one plain call
    instead of a fancy-index gather/scatter (0.8 us; a masked ``where=`` call 1.1 us)."""
    np.exp(logp, out=grad)
    np.subtract(grad, hot, out=grad)
    np.multiply(grad, inv_n, out=grad)


def _sparse_ce_loss(logp: np.ndarray, hot: np.ndarray, n):
    """The mean of -logp at the labels (a masked sum: a -inf logit elsewhere is no NaN)."""
    return -_add_reduce(logp, None, where=hot) / n


def planned_sparse_ce(ins: list, outs: list, a: dict):
    """One bound SparseSoftmaxCrossEntropyWithLogits call with everything the kernel derives
    per call (views, the classes row, row starts, flags) derived once: a function of no
    arguments doing the kernel's NumPy calls on the same arrays (same bits), or None if
    the call has no planned workspaces. For the device runtime's build-time rewrites
    (runtime/rewrite_dense.py): ~1.8 of W1's 9.3 us is that Python."""
    logits, labels = ins
    if len(outs) < 5 or logits.ndim != 2 or labels.ndim != 1:
        return None
    n, c = logits.shape
    out = outs[0]
    logp, hot, row, arg = outs[1:5]
    if a["is_grad"]:
        inv_n = out.dtype.type(1.0 / n)

        def finish():
            _sparse_ce_grad(logp, hot, out, inv_n)
    else:
        n_dt = logits.dtype.type(n)

        def finish():
            out[...] = _sparse_ce_loss(logp, hot, n_dt)
    if 0 in a.get(WORKSPACE_FILLED, ()):
        return finish
    column, flat, col = labels.reshape(n, 1), logits.reshape(-1), row.reshape(n, 1)
    if not all(np.shares_memory(v, b) for v, b in ((column, labels), (flat, logits),
                                                    (col, row))) or not labels.size:
        return None  # (a copy would be stale next step)
    starts = _row_starts(n, c)
    scratch = out if a["is_grad"] else outs[5]
    add, subtract, exp, log = np.add, np.subtract, np.exp, np.log
    index = _unsigned(labels) if c <= _EYE_MAX else None
    if index is not None:
        eye = _eye(c)

        def one_hot():
            try:
                eye.take(index, axis=0, out=hot)
            except IndexError:
                raise _range_error(labels, c) from None
    else:
        classes = _classes(c, labels.dtype)

        def one_hot():
            np.equal(column, classes, out=hot)
            if np.count_nonzero(hot) != n:
                raise _range_error(labels, c)

    def run():
        one_hot()
        logits.argmax(axis=1, out=arg)
        add(arg, starts, out=arg)
        flat.take(arg, out=row)
        subtract(logits, col, out=logp)
        exp(logp, out=scratch)
        _add_reduce(scratch, axis=1, out=row)
        log(row, out=row)
        subtract(logp, col, out=logp)
        finish()
    return run


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
            _sparse_ce_grad(logp, hot, outs[0], outs[0].dtype.type(1.0 / n))
        else:
            outs[0][...] = _sparse_ce_loss(logp, hot, logits.dtype.type(n))

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
