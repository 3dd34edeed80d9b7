"""A 1x1 convolution -> BatchNorm (-> ReLU6 / ReLU) chain as one call
(``norm.pointwise_batch_norm``): BatchNorm's statistics come from the convolution's input
(mean and covariance, a K x K product) and the normalisation is folded into the weight,
so the convolution's output x is never made and y is written once, finished in cache.

MobileNetV2's 1x1 expansions (K -> 6K channels) feed BatchNorm -> ReLU6: their outputs are
the step's largest tensors, and BatchNorm read each one twice and wrote it once more after
the product wrote it. Only where the statistics' products are small next to the passes
they save: K <= ``MAX_RATIO`` x C (C output channels; a projection, 6K -> K, would spend
more on the K x K covariance than on the convolution) and an output of at least
``MIN_OUTPUT`` values. W4, convolution + BatchNorm + ReLU6, per-node -> fused (fastest of
5, interleaved): [16,112,112,16] -> 96 25.0 -> 19.1 ms, [16,56,56,24] -> 144 13.3 -> 8.2
and 11.5 -> 8.3 ms; [16,28,28,32] -> 192 2.8 -> 2.8 ms; [16,14,14,96] -> 576 4.1 -> 4.7
ms and [16,7,7,320] -> 1280 6.3 -> 14.6 ms (the K x K and K x C float64 products and the
per-call overheads outweigh the passes saved on small maps).

Applied when the convolution, BatchNorm (NHWC, as the convolution) and the activation (if
any) are consecutive steps on one side of ``ctx.split``; x is read by nothing else (no
other node, no view, not read after the step), and without an activation y may be read by
others (it is written), with one y is read only by the activation (its output is written
instead). The fused call runs at the convolution's step and writes the chain's last
output early: it must share no byte with the convolution's input or weight or with a
statistics output that anything reads; nothing else live at that step can hold those
bytes (every other value live then is live at the next steps too). Results differ from
the per-node kernels at float rounding (the exact statistics of the exact product, the
weight scaled before the product); the per-node entries stay bound.
"""

from __future__ import annotations

import numpy as np

from todkit.opset import conv
from todkit.opset.norm import pointwise_batch_norm
from todkit.opset.registry import get_op
from todkit.runtime.rewrite_norm_act import ACTS

MAX_RATIO = 0.25  # largest K / C: the covariance costs ~K/C of the convolution's flops
MIN_OUTPUT = 1 << 22  # fewest output values (N*H*W*C) worth the statistics' fixed costs


def _single(value, readers, ctx, viewed) -> bool:
    return (readers.get(id(value)) == 1 and id(value) not in ctx.outside
            and id(value) not in viewed)


def _chain(ex, ctx, step: int, readers, viewed):
    """(BatchNorm step, activation step or None) of a fusible chain at ``step``, or None."""
    nodes, bound = ex.nodes, ex.bound
    cv = nodes[step]
    if cv.op != "Conv2D" or bound[step][0] is not get_op("Conv2D").kernel:
        return None
    x_in, w = bound[step][1]
    if w.ndim != 4 or x_in.dtype != w.dtype or x_in.dtype.kind != "f":
        return None
    geo = conv._Geo(x_in.shape, w.shape, cv.attrs)
    if (not conv._pointwise(geo) or geo.cg > MAX_RATIO * geo.o
            or x_in.size // geo.cg * geo.o < MIN_OUTPUT):
        return None
    bn = step + 1
    if (bn >= len(nodes) or nodes[bn].op != "BatchNorm" or nodes[bn].inputs[0] is not cv.outputs[0]
            or bound[bn][0] is not get_op("BatchNorm").kernel
            or str(nodes[bn].attrs["data_format"]).upper() != "NHWC"
            or not _single(cv.outputs[0], readers, ctx, viewed)):
        return None
    act = bn + 1
    y = nodes[bn].outputs[0]
    if (act < len(nodes) and nodes[act].op in ACTS and nodes[act].inputs == [y]
            and bound[act][0] is get_op(nodes[act].op).kernel and _single(y, readers, ctx, viewed)):
        last = act
    else:
        act, last = None, bn
    steps = range(step, last + 1)
    if set(steps) & ctx.taken or len({s < ctx.split for s in steps}) != 1:
        return None
    dst = bound[last][2][0]
    if np.shares_memory(dst, x_in) or np.shares_memory(dst, w):
        return None
    for v, arr in zip(nodes[bn].outputs[1:], bound[bn][2][1:5]):
        if (readers.get(id(v)) or id(v) in ctx.outside) and np.shares_memory(dst, arr):
            return None
    return bn, act


def _fused(act):
    def conv_batch_norm(ins, outs, a, rt):
        pointwise_batch_norm(ins, outs, a, rt, act)
    return conv_batch_norm


def rewrite_conv_norm(ex, ctx) -> dict:
    """{convolution step: fused call, BatchNorm (and activation) step: None} per chain."""
    readers: dict[int, int] = {}
    for n in ex.nodes:
        for v in n.inputs:
            readers[id(v)] = readers.get(id(v), 0) + 1
    # Roots viewed by other values (in-place outputs, ``ex.inplace``, are the chain's own
    # next writes, not readers of the old bytes).
    viewed = {id(root) for k, root in ex.aliases.items() if k not in ex.inplace}
    fused: dict = {}
    step = 0
    while step < len(ex.nodes) - 1:
        found = _chain(ex, ctx, step, readers, viewed)
        if found is None:
            step += 1
            continue
        bn, act = found
        last = bn if act is None else act
        _, (x_in, w), _, _ = ex.bound[step]
        _, bins, bouts, battrs = ex.bound[bn]
        dst = ex.bound[last][2][0]
        fn = _fused(None if act is None else ACTS[ex.nodes[act].op])
        fused[step] = (fn, [x_in, w, *bins[1:]], [dst, *bouts[1:5]], battrs)
        for s in range(step + 1, last + 1):
            fused[s] = None
        step = last + 1
    return fused
