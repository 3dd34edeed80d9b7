"""Pooling in NCHW or NHWC: MaxPool / MaxPoolGrad(x, y, dy) and AvgPool / AvgPoolGrad(x, y, dy),
as MindSpore emits them.

Both loop over the kh*kw kernel positions, each a strided view of the (-inf padded) input
covering every window at once; the gradient routes each dy to the first maximum of its
window (MindSpore's CPU kernel and Lite's MaxPoolingGrad take the first maximum too).
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.conv import pair, window_geometry
from todkit.opset.layout import Layout
from todkit.opset.registry import OpDef, op

POOL_ATTRS = {"kernel_size": (1, 1), "strides": (1, 1), "pad_mode": "valid", "format": "NCHW"}


def pool_geometry(x_shape, a):
    lay = Layout(a["format"])
    if len(x_shape) != 4:
        raise ValueError(f"needs a 4-D {lay.name} input, got {list(x_shape)}")
    if str(a["pad_mode"]).lower() not in ("valid", "same"):
        raise ValueError(f"pad_mode must be 'valid' or 'same', got {a['pad_mode']!r}")
    return window_geometry(lay.hw(x_shape), pair(a["kernel_size"]), pair(a["strides"]), (1, 1),
                           a["pad_mode"], (0, 0, 0, 0))


def pooled_type(x, a) -> TensorType:
    lay = Layout(a["format"])
    _, (oh, ow) = pool_geometry(x.shape, a)
    return TensorType(lay.shape(x.shape[0], lay.channels(x.shape), oh, ow), x.dtype)


def pool_taps(x, a, pad_value):
    """The padded input, its pads, and per kernel position the index of the strided view
    holding the element each window takes from there. Looping over the kh*kw taps is
    faster than reducing a 6-D window view."""
    lay = Layout(a["format"])
    pads, ohw = pool_geometry(x.shape, a)
    (kh, kw), stride = pair(a["kernel_size"]), pair(a["strides"])
    xp = lay.pad(x, pads, pad_value)
    taps = [lay.tap(i, j, ohw, stride) for i in range(kh) for j in range(kw)]
    return xp, pads, taps


@op
class MaxPool(OpDef):
    attrs = dict(POOL_ATTRS)

    def infer(ins, a):
        return [pooled_type(ins[0], a)]

    def workspace(ins, a):
        """NHWC tiling windows: their tap-major planes (``_tiled_max_pool``)."""
        x = ins[0]
        if not (_tiles(x.shape, a) and Layout(a["format"]).nhwc):
            return []
        y = pooled_type(x, a)
        return [TensorType((int(np.prod(pair(a["kernel_size"]))) * y.size,), x.dtype)]

    def kernel(ins, outs, a, rt):
        if _tiled_max_pool(ins[0], outs[0], a, outs[1:]):
            return
        # Padding never wins a max: pad with -inf.
        xp, _, taps = pool_taps(ins[0], a, -np.inf)
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


def _pool_grad_infer(ins, a):
    """(x, y, dy) -> dx shaped like x; y and dy are the pooled shape."""
    x, y, dy = ins
    want = pooled_type(x, a)
    if y != want or dy != want:
        raise ValueError(f"y {y} and dy {dy} must both be {want}")
    return [x]


@op
class MaxPoolGrad(OpDef):
    """dx of MaxPool from (x, y, dy): dy goes to the first maximum of each window."""

    attrs = dict(POOL_ATTRS)

    infer = _pool_grad_infer

    def workspace(ins, a):
        """The tiled path's scratch (the windows' max, the hit masks; the tap-major planes
        are made in the output's own buffer); the overlapping path's (the max, the hit and
        taken masks, the routed dy)."""
        x = ins[0]
        y = pooled_type(x, a)
        if not _tiles(x.shape, a):
            return [TensorType(y.shape, x.dtype), TensorType(y.shape, dtypes.bool_),
                    TensorType(y.shape, dtypes.bool_), TensorType(y.shape, x.dtype)]
        kk = int(np.prod(pair(a["kernel_size"])))
        return [TensorType(y.shape, x.dtype), TensorType((kk * y.size,), dtypes.bool_),
                TensorType(y.shape, dtypes.bool_)]

    def kernel(ins, outs, a, rt):
        x, _, dy = ins
        if _tiled_max_pool_grad(x, dy, outs[0], a, outs[1:]):
            return
        xp, pads, taps = pool_taps(x, a, -np.inf)
        if _overlapping_max_pool_grad(xp, pads, taps, dy, outs[0], a, outs[1:]):
            return
        # Running max over the taps; strict ">" keeps the first maximum, as argmax would.
        best = xp[taps[0]].copy()
        first_max = np.zeros(best.shape, np.intp)
        for k, tap in enumerate(taps[1:], start=1):
            greater = xp[tap] > best
            np.copyto(best, xp[tap], where=greater)
            first_max[greater] = k
        dxp = np.zeros(xp.shape, x.dtype)
        for k, tap in enumerate(taps):
            hit = first_max == k
            if hit.any():
                dxp[tap] += np.where(hit, dy, 0)
        lay = Layout(a["format"])
        outs[0][...] = lay.crop(dxp, pads, lay.hw(x.shape))


def _overlapping_max_pool_grad(xp, pads, taps, dy, out, a, scratch=()) -> bool:
    """MaxPoolGrad for any windows by whole-plane operations per tap: the max of the taps,
    then in tap order "equal to the max and not yet taken" routes dy (ResNet's 3x3/2 pool:
    9.2 -> ~1 ms). The same bits as the ">" scan below, which it leaves to NaN maxima and
    non-finite dy (False, nothing written). ``scratch``: the planned workspaces (max, hit,
    taken, routed; MaxPoolGrad.workspace), else fresh arrays; without padding dy is summed
    straight into ``out`` (no padded copy: W6's pool 1.16 -> 0.95 ms)."""
    if not np.isfinite(dy).all():
        return False
    shape = xp[taps[0]].shape
    if len(scratch) == 4 and all(t.shape == shape for t in scratch):
        best, hit, taken, routed = scratch
    else:
        best, hit, taken, routed = (np.empty(shape, xp.dtype), np.empty(shape, bool),
                                    np.empty(shape, bool), np.empty(shape, xp.dtype))
    np.copyto(best, xp[taps[0]])
    for tap in taps[1:]:
        np.maximum(best, xp[tap], out=best)
    if np.isnan(best).any():
        return False
    direct = not any(pads) and out.shape == xp.shape and not np.shares_memory(out, xp)
    dxp = out if direct else np.zeros(xp.shape, xp.dtype)
    if direct:
        dxp.fill(0)
    taken.fill(False)
    for tap in taps:
        np.equal(xp[tap], best, out=hit)
        np.greater(hit, taken, out=hit)  # equal to the max and no earlier tap took it
        taken |= hit
        np.multiply(hit, dy, out=routed)
        dxp[tap] += routed
    if not direct:
        lay = Layout(a["format"])
        out[...] = lay.crop(dxp, pads, lay.hw(out.shape))
    return True


def _tiles(x_shape, a) -> bool:
    """The windows tile the input: stride = kernel, no padding."""
    if pair(a["kernel_size"]) != pair(a["strides"]):
        return False
    return not any(pool_geometry(x_shape, a)[0])


def _tiled_max_pool_grad(x, dy, out, a, scratch=()) -> bool:
    """MaxPoolGrad when the windows tile the input (stride = kernel, no padding), as LeNet's
    2x2/2 pools. The windows are a reshaped view of x; one copy puts them tap-major
    (kh*kw contiguous planes shaped like dy) in ``out``'s own buffer, where the max, the
    first tap equal to it and the hit masks are whole-plane operations; then dy times the
    masks is written through the windows' view of ``out``. Same bits as the general path
    (returns False, ``out`` holding garbage, for overlapping or padded windows and for NaN
    maxima, which the general path's ">" scan treats its own way). ``scratch``: the planned
    workspaces (MaxPoolGrad.workspace), else fresh arrays."""
    (kh, kw), (sh, sw) = pair(a["kernel_size"]), pair(a["strides"])
    if (kh, kw) != (sh, sw):
        return False
    pads, (oh, ow) = pool_geometry(x.shape, a)
    if any(pads):
        return False
    lay = Layout(a["format"])
    kk = kh * kw
    taps = _tile_taps(lay, x.shape[0], (oh, ow), (kh, kw))
    if len(scratch) == 3:
        best, hit, taken = scratch
        hit = hit.reshape((kk,) + dy.shape)
    else:
        best, hit, taken = (np.empty(dy.shape, x.dtype), np.empty((kk,) + dy.shape, bool),
                            np.empty(dy.shape, bool))
    # The output's buffer holds the planes until the masks are made (saves x's size of
    # scratch, the largest buffer alive at LeNet's pool1 gradient).
    planes = (out.reshape(-1)[:kk * dy.size] if out.flags.c_contiguous
              else np.empty(kk * dy.size, x.dtype)).reshape((kk,) + dy.shape)
    _copy_windows(lay, taps, x, planes.reshape((kh, kw) + dy.shape))
    np.maximum.reduce(planes, axis=0, out=best)
    if np.isnan(best).any():
        return False
    np.equal(planes, best, out=hit)
    np.copyto(taken, hit[0])
    for k in range(1, kk):  # ties: only the first tap equal to the max takes dy
        np.greater(hit[k], taken, out=hit[k])  # hit and not taken
        taken |= hit[k]
    dst = taps(out)
    hits = hit.reshape((kh, kw) + dy.shape)
    if np.isfinite(dy).all():  # hit * dy: 20x faster than a masked copy
        np.multiply(hits, dy, out=dst)
    else:  # inf * False would be NaN
        dst[...] = 0
        np.copyto(dst, dy, where=hits)
    _zero_uncovered(lay, out, (oh * kh, ow * kw))
    # + 0 turns every -0.0 into +0.0, as the general path's zeros-plus-where() does.
    np.add(out, 0, out=out)
    return True


def _tiled_max_pool(x, out, a, scratch=()) -> bool:
    """MaxPool of NHWC tiling windows (LeNet's 2x2/2): one copy of the windows, each
    pixel's channels as one item, into tap-major planes, then one maximum reduction over
    them (pool1 [32,28,28,6] ~115 -> ~55 us: a maximum over each tap's strided view runs an
    inner loop of C = 6). The reduction takes the taps in the same order as the general
    loop, so the bits (signed zeros, NaN) are the same. False (nothing written) otherwise."""
    lay = Layout(a["format"])
    if not (lay.nhwc and x.flags.c_contiguous and _tiles(x.shape, a)):
        return False
    (kh, kw), (_, ohw) = pair(a["kernel_size"]), pool_geometry(x.shape, a)
    size = kh * kw * out.size
    planes = (scratch[0][:size] if scratch and scratch[0].size >= size
              else np.empty(size, x.dtype)).reshape((kh, kw) + out.shape)
    _copy_windows(lay, _tile_taps(lay, x.shape[0], ohw, (kh, kw)), x, planes)
    np.maximum.reduce(planes.reshape((kh * kw,) + out.shape), axis=0, out=out)
    return True


def _tile_taps(lay, n, ohw, khw):
    """The (kh, kw, ...dy's shape) view of the windows of an input or output array."""
    (oh, ow), (kh, kw) = ohw, khw
    if lay.nhwc:
        def taps(t):  # (kh, kw, N, OH, OW, C) view of the covered part
            return t[:, :oh * kh, :ow * kw].reshape(n, oh, kh, ow, kw, t.shape[3]).transpose(
                2, 4, 0, 1, 3, 5)
    else:
        def taps(t):  # (kh, kw, N, C, OH, OW)
            return t[:, :, :oh * kh, :ow * kw].reshape(n, t.shape[1], oh, kh, ow, kw).transpose(
                3, 5, 0, 1, 2, 4)
    return taps


def _copy_windows(lay, taps, x, dst) -> None:
    """``dst[...] = taps(x)``. NHWC moves each pixel's C channels as one opaque item (a
    void view): LeNet's pool1 (C 6) 76 -> 44 us, the copy's inner loop being C long."""
    c = x.shape[3] if lay.nhwc else 0
    if c and x.flags.c_contiguous and dst.flags.c_contiguous:
        item = np.dtype((np.void, c * x.itemsize))
        np.copyto(dst.view(item), taps(x.view(item)))
        return
    np.copyto(dst, taps(x))


def _zero_uncovered(lay, out, covered) -> None:
    """Zero the rows and columns no window covers (an odd size under a 2x2/2 pool)."""
    ch, cw = covered
    if lay.nhwc:
        out[:, ch:] = 0
        out[:, :ch, cw:] = 0
    else:
        out[:, :, ch:] = 0
        out[:, :, :ch, cw:] = 0


def _window_counts(x, a, dtype):
    """Real (unpadded) elements in each window, for averaging that excludes padding."""
    lay = Layout(a["format"])
    ones = np.ones((1, 1, 1, 1), dtype)
    shape = lay.shape(1, 1, *lay.hw(x.shape))
    padded, _, taps = pool_taps(np.broadcast_to(ones, shape), a, 0.0)
    counts = sum(padded[t] for t in taps)
    return counts


@op
class AvgPool(OpDef):
    """Mean over each window; 'same' padding is excluded from the count (TF / MindSpore
    'same' semantics)."""

    attrs = dict(POOL_ATTRS)

    def infer(ins, a):
        return [pooled_type(ins[0], a)]

    def kernel(ins, outs, a, rt):
        x, out = ins[0], outs[0]
        xp, _, taps = pool_taps(x, a, 0.0)
        np.copyto(out, xp[taps[0]])
        for tap in taps[1:]:
            out += xp[tap]
        out /= _window_counts(x, a, x.dtype)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [g.emit("AvgPoolGrad", [x, node.outputs[0], douts[0]], **node.attrs)]


@op
class AvgPoolGrad(OpDef):
    """dx of AvgPool from (x, y, dy): each dy spread evenly over its window's real elements."""

    attrs = dict(POOL_ATTRS)

    infer = _pool_grad_infer

    def kernel(ins, outs, a, rt):
        x, _, dy = ins
        lay = Layout(a["format"])
        pads, _ = pool_geometry(x.shape, a)
        share = dy / _window_counts(x, a, x.dtype)
        xp, _, taps = pool_taps(x, a, 0.0)
        dxp = np.zeros(xp.shape, x.dtype)
        for tap in taps:
            dxp[tap] += share
        outs[0][...] = lay.crop(dxp, pads, lay.hw(x.shape))
