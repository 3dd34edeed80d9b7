"""BatchNorm followed by ReLU6 or ReLU: one call that clips each normalised block while it is
in cache and writes it straight into the activation's output.

MobileNetV2 (W4) has 35 BatchNorm -> ReLU6 pairs; the ReLU6 pass alone was ~17 ms of a
~300 ms step (a full read and write of every activation), clipping inside BatchNorm's
normalisation loop costs a fraction of that. The fused call computes what the two kernels
compute, bit for bit: the same normalisation, then on each block the call the activation's
kernel makes (ReLU6 ``np.clip(y, 0, 6)``, ReLU ``np.maximum(y, 0)`` against a zeros row;
``np.clip(y, 0, inf)`` would keep -0.0 where ReLU writes +0.0).

Applied when:
- the activation runs right after the BatchNorm (the next step) and reads its output y;
- nothing else reads y (no other node, no view, not read after the step): y is then never
  written, its arena bytes stay reserved but unused;
- the activation's output shares no byte with BatchNorm's inputs, except being exactly x
  (the planner puts it at a dead x's offset: the normalisation reads a block before
  writing it, element by element), and shares none with a statistics output that anything
  reads. The normalisation reads only x and private per-channel vectors, so overlapping
  the dead statistics outputs or BatchNorm's scratch is safe.
The fused call runs at the BatchNorm's step; since the activation is the next step, the
bytes it writes early hold nothing live at that step but BatchNorm's own operands.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from todkit.opset.norm import batch_norm
from todkit.opset.registry import get_op


def _relu6(y: np.ndarray) -> None:
    np.clip(y, 0, 6, out=y)  # as ReLU6's kernel


@lru_cache(maxsize=64)
def _zeros(width: int, dtype) -> np.ndarray:
    return np.zeros(width, dtype)


def _relu(y: np.ndarray) -> None:
    # ReLU's kernel is np.maximum(y, 0); against a zeros row it is the same ufunc with the
    # same results (-0.0 -> +0.0, NaN kept) but 4.7x faster on this NumPy (the scalar
    # operand takes a slow loop: 82 against 17 us per 1 MB block).
    np.maximum(y, _zeros(y.shape[-1], y.dtype), out=y)


ACTS = {"ReLU6": _relu6, "ReLU": _relu}


def _fused(act):
    def batch_norm_act(ins, outs, a, rt):
        batch_norm(ins, outs, a, rt, act)
    return batch_norm_act


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    """``a`` and ``b`` are the same bytes laid out alike (in-place element-wise is safe)."""
    return (a.__array_interface__["data"][0] == b.__array_interface__["data"][0]
            and a.shape == b.shape and a.strides == b.strides and a.dtype == b.dtype)


def _readers(nodes) -> dict[int, int]:
    """id(value) -> how many node inputs read it."""
    count: dict[int, int] = {}
    for n in nodes:
        for v in n.inputs:
            count[id(v)] = count.get(id(v), 0) + 1
    return count


def _fusible(ex, ctx, step: int, readers: dict[int, int], viewed: set[int]) -> bool:
    node, act = ex.nodes[step], ex.nodes[step + 1]
    if (node.op != "BatchNorm" or act.op not in ACTS or {step, step + 1} & ctx.taken
            or (step < ctx.split) != (step + 1 < ctx.split)):
        return False
    if (ex.bound[step][0] is not get_op("BatchNorm").kernel
            or ex.bound[step + 1][0] is not get_op(act.op).kernel):
        return False  # accumulate mode, a view, or a node bound as a repeat of another
    y = node.outputs[0]
    if (len(act.inputs) != 1 or act.inputs[0] is not y or readers.get(id(y)) != 1
            or id(y) in ctx.outside or id(y) in viewed):
        return False
    _, ins, outs, _ = ex.bound[step]
    dst = ex.bound[step + 1][2][0]
    if dst.dtype != ins[0].dtype or dst.shape != ins[0].shape:
        return False
    if any(np.shares_memory(dst, a) for a in ins[1:]):
        return False
    if np.shares_memory(dst, ins[0]) and not _same(dst, ins[0]):
        return False
    for v, a in zip(node.outputs[1:], outs[1:5]):
        if (readers.get(id(v)) or id(v) in ctx.outside) and np.shares_memory(dst, a):
            return False
    return True


def rewrite_norm_act(ex, ctx) -> dict:
    """{BatchNorm step: fused call, activation step: None} for every fusible pair."""
    readers = _readers(ex.nodes)
    # Roots viewed by other values (in-place outputs, ``ex.inplace``, are the chain's own
    # next writes, not readers of the old bytes).
    viewed = {id(root) for k, root in ex.aliases.items() if k not in ex.inplace}
    fused: dict = {}
    for step in range(len(ex.nodes) - 1):
        if step in fused or not _fusible(ex, ctx, step, readers, viewed):
            continue
        _, ins, outs, attrs = ex.bound[step]
        dst = ex.bound[step + 1][2][0]
        fused[step] = (_fused(ACTS[ex.nodes[step + 1].op]), ins, [dst, *outs[1:]], attrs)
        fused[step + 1] = None
    return fused
