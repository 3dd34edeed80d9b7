"""Max pooling in NCHW: MaxPool and MaxPoolGrad(x, y, dy), as MindSpore emits them.

Both loop over the kh*kw kernel positions, each a strided view of the (-inf padded) input
covering every window at once; the gradient routes each dy to the first maximum of its
window.
"""



from __future__ import annotations

import numpy as np

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


def _taps(x, a):
    """The padded input and, per kernel position, the index of the strided (N, C, OH, OW)
    view holding the element each window takes from there. Looping over the kh*kw taps is
    faster than reducing a 6-D window view."""
    (t, b, l, r), (oh, ow) = pool_geometry(x.shape, a)
    (kh, kw), (sh, sw) = pair(a["kernel_size"]), pair(a["strides"])
    xp = x
    if t or b or l or r:
        # Padding never wins a max: pad with -inf.
        xp = np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=-np.inf)
    taps = [(slice(None), slice(None), slice(i, i + (oh - 1) * sh + 1, sh),
             slice(j, j + (ow - 1) * sw + 1, sw)) for i in range(kh) for j in range(kw)]
    return xp, taps


@op
class MaxPool(OpDef):
    attrs = dict(POOL_ATTRS)

    def infer(ins, a):
        (x,) = ins
        _, (oh, ow) = pool_geometry(x.shape, a)
        return [TensorType((x.shape[0], x.shape[1], oh, ow), x.dtype)]

    def kernel(ins, outs, a, rt):
        xp, taps = _taps(ins[0], a)
        out = outs[0]
        np.copyto(out, xp[taps[0]])
        for tap in taps[1:]:
            np.maximum(out, xp[tap], out=out)

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
        xp, taps = _taps(x, a)
        # Running max over the taps; strict ">" keeps the first maximum, as argmax would.
        best = xp[taps[0]].copy()
        first_max = np.zeros(best.shape, np.intp)
        for k, tap in enumerate(taps[1:], start=1):
            greater = xp[tap] > best
            np.copyto(best, xp[tap], where=greater)
            first_max[greater] = k
        dxp = np.zeros(xp.shape, x.dtype)
        t, l = pool_geometry(x.shape, a)[0][::2]
        for k, tap in enumerate(taps):
            hit = first_max == k
            if hit.any():
                dxp[tap] += np.where(hit, dy, 0)
        outs[0][...] = dxp[:, :, t:t + x.shape[2], l:l + x.shape[3]]
