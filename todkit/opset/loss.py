"""Softmax cross-entropy losses, dense and sparse, with MindSpore's gradient forms."""



from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import WORKSPACE_FILLED, OpDef, op


def _log_softmax(logits: np.ndarray, out: np.ndarray) -> np.ndarray:
    """Numerically stable log-softmax over the last axis, written into ``out``."""
    # ufunc.reduce directly: the ndarray methods add a Python-level wrapper per call.
    np.subtract(logits, np.maximum.reduce(logits, axis=1, keepdims=True), out=out)
    lse = np.log(np.add.reduce(np.exp(out), axis=1, keepdims=True))
    out -= lse
    return out


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
        # Workspace 0 holds log_softmax(logits); the loss and its is_grad node share it in
        # the device runtime (workspace_key): the second one to run finds it filled.
        logp = outs[1] if len(outs) > 1 else np.empty_like(logits)
        if 0 not in a.get(WORKSPACE_FILLED, ()):
            # One reduction checks both ends: negative labels are huge seen as unsigned.
            unsigned = labels.view(labels.dtype.str.replace("i", "u"))
            if labels.size and np.maximum.reduce(unsigned, axis=None) >= c:
                raise ValueError(f"labels must lie in [0, {c}), got values in "
                                 f"[{labels.min()}, {labels.max()}]")
            _log_softmax(logits, logp)
        rows = np.arange(n)
        if a["is_grad"]:
            grad = outs[0]
            np.exp(logp, out=grad)
            grad[rows, labels] -= 1
            grad *= grad.dtype.type(1.0 / n)
        else:
            outs[0][...] = -logp[rows, labels].sum(dtype=logits.dtype) / logits.dtype.type(n)

    def workspace(ins, a):
        return [ins[0]]

    def workspace_key(node):
        logits, labels = node.inputs
        return {} if logits.is_const else {0: ("log_softmax", id(logits), id(labels))}

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
