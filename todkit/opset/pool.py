"""Max pooling in NCHW: MaxPool and MaxPoolGrad(x, y, dy), as MindSpore emits them.

Windows are a strided view of the (-inf padded) input; the gradient routes each dy to the
first maximum of its window, scattered with one strided add per kernel position.
"""

# ruff: noqa: RUF012  (``attrs`` is the op's read-only attribute table)

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from todkit.ir.graph import TensorType
from todkit.opset.conv import check_format, pair, window_geometry
from todkit.opset.registry import OpDef, op

POOL_ATTRS = {"kernel_size": (1, 1), "strides": (1, 1), "pad_mode": "valid", "format": "NCHW"}


def pool_geometry(x_shape, a):
    check_format(a)
    if len(x_shape) != 4:
        raise ValueError(f"needs a 4-D NCHW input, got {list(x_shape)}")
    if str(a["pad_mode"]).lower() not in ("valid", "same"):
        raise ValueError(f"pad_mode must be 'valid' or 'same', got {a['pad_mode']!r}")
    return window_geometry(x_shape[2:], pair(a["kernel_size"]), pair(a["strides"]), (1, 1),
                           a["pad_mode"], (0, 0, 0, 0))


def _windows(x, a):
    """Padded input, and its windows as a view (N, C, OH, OW, kh, kw)."""
    (t, b, l, r), (oh, ow) = pool_geometry(x.shape, a)
    (kh, kw), (sh, sw) = pair(a["kernel_size"]), pair(a["strides"])
    xp = x
    if t or b or l or r:
        # Padding never wins a max: pad with -inf.
        xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
    win = sliding_window_view(xp, (kh, kw), axis=(2, 3))[:, :, ::sh, ::sw][:, :, :oh, :ow]
    return xp, win


@op
class MaxPool(OpDef):
    attrs = dict(POOL_ATTRS)

    def infer(ins, a):
        (x,) = ins
        _, (oh, ow) = pool_geometry(x.shape, a)
        return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]

    def kernel(ins, outs, a, rt):
        _, win = _windows(ins[0], a)
        np.max(win, axis=(4, 5), out=outs[0])

    def grad(g, node, douts):
        (dy,) = douts
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [g.emit("MaxPoolGrad", [x, node.outputs[0], dy], **node.attrs)]


@op
class MaxPoolGrad(OpDef):
    """dx of MaxPool from (x, y, dy): dy goes to the first maximum of each window."""

    attrs = dict(POOL_ATTRS)

    def infer(ins, a):
        x, y, dy = ins
        _, (oh, ow) = pool_geometry(x.shape, a)
        want = TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)
        if y != want or dy != want:
            raise ValueError(f"y {y} and dy {dy} must both be {want}")
        return [x]

    def kernel(ins, outs, a, rt):
        x, _, dy = ins
        xp, win = _windows(x, a)
        n, c, oh, ow, kh, kw = win.shape
        (sh, sw), (t, _, l, _) = pair(a["strides"]), pool_geometry(x.shape, a)[0]
        first_max = win.reshape(n, c, oh, ow, kh * kw).argmax(axis=-1)
        dxp = np.zeros(xp.shape, x.dtype)
        for i in range(kh):
            for j in range(kw):
                hit = first_max == i * kw + j
                if hit.any():
                    dxp[:, :, i:i + (oh - 1) * sh + 1:sh, j:j + (ow - 1) * sw + 1:sw] += (
                        np.where(hit, dy, 0))
        outs[0][...] = dxp[:, :, t:t + x.shape[2], l:l + x.shape[3]]
