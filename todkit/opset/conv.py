"""2-D convolution: Conv2D and its two backward ops, Conv2DBackpropInput and
Conv2DBackpropFilter (the ops MindSpore's gradient of Conv2D emits), in NCHW (weights OIHW
``[O, C/g, kh, kw]``) and NHWC (weights KHWC ``[O, kh, kw, C/g]``, as MindSpore Lite's
converter stores train models).

``input_sizes`` / ``filter_sizes`` are always in NCHW / OIHW order, whatever the format: that
is what the Lite converter writes into the NHWC file's constant inputs (its shape inference
permutes them NCHW -> NHWC), and what MindSpore writes for NCHW.

The general path is one im2col: a strided *view* of the padded input over every window (no
Python loop over pixels), copied once into the matrix a BLAS matmul consumes. In NCHW the
columns are ``(N, C*kh*kw, OH*OW)`` and the product lands straight in the NCHW output; in
NHWC they are ``(N*OH*OW, kh*kw*C)`` and the product is the NHWC output. The input gradient
scatters columns back with one strided add per kernel position (col2im, kh*kw iterations).
``group > 1`` runs the same code per group, except depthwise convolution (one input channel
per group), which loops over the kh*kw kernel taps with per-channel broadcasting and never
builds columns, so MobileNet-sized layers cost no memory beyond their output.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from todkit.ir.graph import TensorType
from todkit.opset.layout import Layout
from todkit.opset.registry import REQUIRED, WORKSPACE_FILLED, WORKSPACE_PRIVATE, OpDef, op

CONV_ATTRS = {
    "out_channel": REQUIRED,
    "kernel_size": REQUIRED,
    "mode": 1,
    "pad_mode": "valid",
    "pad_list": (0, 0, 0, 0),
    "stride": (1, 1),
    "dilation": (1, 1),
    "group": 1,
    "format": "NCHW",
}


def pair(v) -> tuple[int, int]:
    """(h, w) from an int, a pair, or MindSpore's 4-long NCHW form ``(1, 1, h, w)``."""
    if isinstance(v, (int, np.integer)):
        return int(v), int(v)
    v = tuple(int(d) for d in v)
    if len(v) not in (1, 2, 4):
        raise ValueError(f"expected 1, 2 or 4 values, got {list(v)}")
    return (v[0], v[0]) if len(v) == 1 else v[-2:]


def same_pads(size: int, k: int, s: int, d: int) -> tuple[int, int]:
    """MindSpore/TF 'same': total = max((ceil(H/s)-1)*s + (k-1)*d + 1 - H, 0), top = total//2."""
    total = max((math.ceil(size / s) - 1) * s + (k - 1) * d + 1 - size, 0)
    return total // 2, total - total // 2


def window_geometry(hw, khw, stride, dilation, pad_mode, pad_list):
    """Resolved pads (top, bottom, left, right) and output (OH, OW) of a sliding window."""
    (h, w), (kh, kw), (sh, sw), (dh, dw) = hw, khw, stride, dilation
    mode = str(pad_mode).lower()
    if mode == "same":
        pads = same_pads(h, kh, sh, dh) + same_pads(w, kw, sw, dw)
    elif mode == "valid":
        pads = (0, 0, 0, 0)
    elif mode == "pad":
        pads = tuple(int(p) for p in pad_list)
        if len(pads) != 4 or min(pads) < 0:
            raise ValueError(f"pad_list must be 4 non-negative ints, got {list(pad_list)}")
    else:
        raise ValueError(f"unknown pad_mode {pad_mode!r}")
    oh = (h + pads[0] + pads[1] - (kh - 1) * dh - 1) // sh + 1
    ow = (w + pads[2] + pads[3] - (kw - 1) * dw - 1) // sw + 1
    if oh <= 0 or ow <= 0:
        raise ValueError(f"input {h}x{w} is too small for a {kh}x{kw} window "
                         f"(dilation {dh}x{dw}, pads {list(pads)})")
    return pads, (oh, ow)


def conv_geometry(x_shape, w_shape, a):
    """Check a Conv2D's operand shapes against its attributes; return (pads, (OH, OW))."""
    lay = Layout(a["format"])
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"needs 4-D x and w, got {list(x_shape)} and {list(w_shape)}")
    group = int(a["group"])
    o, cg, (kh, kw) = w_shape[0], lay.weight_in_channels(w_shape), lay.weight_kernel(w_shape)
    if lay.channels(x_shape) != cg * group:
        raise ValueError(f"x has {lay.channels(x_shape)} channels, w expects {cg} x group "
                         f"{group} ({lay.name})")
    if o != int(a["out_channel"]) or o % group:
        raise ValueError(f"w has {o} output channels; out_channel is {a['out_channel']}, "
                         f"group {group}")
    if (kh, kw) != pair(a["kernel_size"]):
        raise ValueError(f"w kernel {kh}x{kw} differs from kernel_size {a['kernel_size']}")
    return window_geometry(lay.hw(x_shape), (kh, kw), pair(a["stride"]), pair(a["dilation"]),
                           a["pad_mode"], a["pad_list"])


def resolved_pad_list(x_shape, w_shape, attrs) -> tuple[int, int, int, int]:
    """The ``pad_list`` MindSpore stores after shape inference (for front ends and codecs)."""
    return tuple(conv_geometry(x_shape, w_shape, attrs)[0])


class _Geo:
    """Everything a kernel needs about one convolution, worked out once per call."""

    def __init__(self, x_shape, w_shape, a):
        self.lay = lay = Layout(a["format"])
        self.pads, self.ohw = conv_geometry(x_shape, w_shape, a)
        self.stride, self.dilation = pair(a["stride"]), pair(a["dilation"])
        self.g = int(a["group"])
        self.o = int(w_shape[0])
        self.og = self.o // self.g
        self.cg = lay.weight_in_channels(w_shape)
        self.khw = lay.weight_kernel(w_shape)
        self.n = int(x_shape[0])
        self.hw = lay.hw(x_shape)
        self.depthwise = self.g > 1 and self.cg == 1

    def windows(self, xp):
        """Read-only view of every window of the padded input: (N, C, kh, kw, OH, OW) for
        NCHW, (N, OH, OW, kh, kw, C) for NHWC."""
        (kh, kw), (sh, sw), (dh, dw), (oh, ow) = self.khw, self.stride, self.dilation, self.ohw
        if self.lay.nhwc:
            sn, sy, sx, sc = xp.strides
            return as_strided(xp, (xp.shape[0], oh, ow, kh, kw, xp.shape[3]),
                              (sn, sy * sh, sx * sw, sy * dh, sx * dw, sc), writeable=False)
        sn, sc, sy, sx = xp.strides
        return as_strided(xp, (xp.shape[0], xp.shape[1], kh, kw, oh, ow),
                          (sn, sc, sy * dh, sx * dw, sy * sh, sx * sw), writeable=False)

    def taps(self):
        kh, kw = self.khw
        for i in range(kh):
            for j in range(kw):
                yield i, j, self.lay.tap(i, j, self.ohw, self.stride, self.dilation)

    def weight_tap(self, w, i, j):
        """The [O] weights at kernel position (i, j) of a depthwise filter, broadcastable."""
        return self.lay.per_channel(w[:, i, j, 0] if self.lay.nhwc else w[:, 0, i, j])

    def spread(self, xp):
        """Depthwise with a channel multiplier: output channel o reads input channel o // og."""
        if self.og == 1:
            return xp
        return np.repeat(xp, self.og, axis=self.lay.channel_axis)


_GEO_CACHE: dict = {}
_GEO_CACHE_SIZE = 512


def _geo(x_shape, w_shape, a) -> _Geo:
    """``_Geo`` of a kernel call, made once per shapes and attributes: working it out (and
    the kernel cut of ``_trimmed``) was ~11 us of every call, ~65 us of LeNet's step."""
    key = (tuple(x_shape), tuple(w_shape), *map(a.get, CONV_ATTRS))
    try:
        geo = _GEO_CACHE.get(key)
    except TypeError:  # an attribute held as a list or array: not cached
        return _Geo(x_shape, w_shape, a)
    if geo is None:
        if len(_GEO_CACHE) >= _GEO_CACHE_SIZE:
            _GEO_CACHE.clear()
        geo = _GEO_CACHE[key] = _Geo(x_shape, w_shape, a)
    return geo


# -- scratch (the ops' workspace) -----------------------------------------------------------
def _padded_shape(geo, c):
    (t, b, l, r), (h, w) = geo.pads, geo.hw
    return geo.lay.shape(geo.n, c, h + t + b, w + l + r)


def conv_workspace(x_shape, w_shape, a, dtype, taps: bool = True,
                   chunked: bool = False, forward: bool = False) -> list[TensorType]:
    """Scratch of a non-depthwise convolution kernel, planned by the device runtime: the
    padded input (empty without padding) and one group's im2col columns, both flat
    (``taps=False``: one kernel position's columns, what NHWC Conv2DBackpropInput uses;
    ``chunked``: one chunk of a forward's columns, ``_chunk_pixels``; one input channel:
    always a chunk of samples' tap-major columns, ``_single_channel_samples``; ``forward``:
    Conv2D's, half the batch's columns where ``_halves``)."""
    geo = _Geo(x_shape, w_shape, a)
    if geo.depthwise:
        return []
    if taps and _pointwise(geo):
        return [TensorType((0,), dtype), TensorType((0,), dtype)]
    live = _live(x_shape, w_shape, a)[1]  # (the kernels decide on the cut convolution)
    if _toeplitz(live) is not None:  # the spread weight (or its gradient), ``_dense_*``
        return [TensorType((0,), dtype), TensorType((_toeplitz_size(live),), dtype)]
    lay = geo.lay
    padded = int(np.prod(_padded_shape(geo, lay.channels(x_shape)))) if any(geo.pads) else 0
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    if not taps and _row_block(geo):
        return [TensorType((padded,), dtype), TensorType((_row_block_scratch(geo),), dtype)]
    per_tap = 1 if not taps and lay.nhwc else kh * kw
    pixels = geo.n * oh * ow
    if chunked and _chunkable(geo):
        pixels = _chunk_pixels(geo, np.dtype(dtype.np).itemsize, a.get(COLUMN_CHUNK))
    if forward and _halves(geo, np.dtype(dtype.np).itemsize):
        pixels = -(-geo.n // 2) * oh * ow
    if taps and _single_channel(geo):
        pixels = _single_channel_samples(geo) * oh * ow
    return [TensorType((padded,), dtype), TensorType((pixels * per_tap * geo.cg,), dtype)]


# A forward convolution whose columns no other node reads (a frozen layer: no filter
# gradient shares them) makes them ~4 MB at a time: GoogleNet's 7x7/2 first layer on a
# [16,224,224,3] batch would otherwise hold 118 MB of columns for one product.
COLUMN_CHUNK_BYTES = 4 << 20
# Attribute a caller may add for a smaller chunk than ``COLUMN_CHUNK_BYTES`` (bytes): the
# pieces of a forward split by samples (runtime/rewrite_parallel.py) share one planned
# chunk between them.
COLUMN_CHUNK = "_column_chunk_bytes"
# Attribute of a forward call that must leave all its samples' columns in workspace 1 (a
# piece of a call whose columns the filter gradient reads, ``forward_pieces``): no chunks.
COLUMNS_KEPT = "_columns_kept"


def _chunkable(geo) -> bool:
    return geo.lay.nhwc and geo.g == 1 and not _pointwise(geo) and not _single_channel(geo)


def _chunk_pixels(geo, itemsize: int, chunk_bytes: int | None = None) -> int:
    """Output pixels per chunk of columns: whole output rows, or whole samples when a
    sample's columns fit, about ``chunk_bytes`` (default ``COLUMN_CHUNK_BYTES``); never
    more than the whole batch."""
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    chunk = COLUMN_CHUNK_BYTES if chunk_bytes is None else int(chunk_bytes)
    rows = max(1, chunk // (ow * kh * kw * geo.cg * itemsize))
    if rows >= oh:
        return min(geo.n, rows // oh) * oh * ow
    return rows * ow


def _small_columns(geo, itemsize: int) -> bool:
    """Columns of a quarter chunk up to one chunk (1-4 MB) are remade by the filter
    gradient rather than kept alive from the forward pass through the backward pass
    (``columns_key``): remaking costs ~35 us per MB (LeNet's conv2: 1.9 MB of a 4.5 MB
    arena, 68 us), from a chunk on it costs milliseconds per layer (ResNet18's 9-38 MB),
    and under a quarter chunk keeping them costs little memory."""
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    size = geo.n * oh * ow * kh * kw * geo.cg * itemsize
    return COLUMN_CHUNK_BYTES // 4 <= size < COLUMN_CHUNK_BYTES


def _halves(geo, itemsize: int) -> bool:
    """Small columns (above) no filter gradient shares: the forward makes them half the
    batch at a time, so they are not its pass's largest buffer (LeNet's conv2: 1.9 MB of
    the 2.9 MB alive at its step; arena 3.6 -> 3.0 MB)."""
    return _chunkable(geo) and geo.n > 1 and _small_columns(geo, itemsize)


def _chunked_columns_forward(geo, xp, w2, out, flat) -> None:
    """NHWC group-1 forward through columns made a chunk at a time (``flat`` holds one
    chunk): each output row is the same dot products as in one whole-batch product."""
    win = geo.windows(xp)  # (N, OH, OW, kh, kw, C)
    n, (oh, ow), k = geo.n, geo.ohw, w2.shape[1]
    dst = out.reshape(n, oh * ow, -1)
    pixels = flat.size // k
    if pixels >= oh * ow:  # whole samples per chunk
        per = pixels // (oh * ow)
        for s0 in range(0, n, per):
            s1 = min(n, s0 + per)
            cols = flat[:(s1 - s0) * oh * ow * k]
            np.copyto(cols.reshape(win[s0:s1].shape), win[s0:s1])
            np.matmul(cols.reshape(-1, k), w2.T, out=dst[s0:s1].reshape(-1, w2.shape[0]))
        return
    rows = pixels // ow
    for s in range(n):
        for r0 in range(0, oh, rows):
            r1 = min(oh, r0 + rows)
            cols = flat[:(r1 - r0) * ow * k]
            np.copyto(cols.reshape(win[s, r0:r1].shape), win[s, r0:r1])
            np.matmul(cols.reshape(-1, k), w2.T, out=dst[s, r0 * ow:r1 * ow])


def columns_key(x, w_shape, a):
    """``workspace_key`` of the im2col columns (workspace 1) of input value ``x``: NHWC,
    group 1 only, where Conv2D and Conv2DBackpropFilter lay the columns out alike
    (N*OH*OW, kh*kw*C), so the filter gradient reuses the forward pass's columns."""
    if x.is_const or str(a["format"]).upper() != "NHWC" or int(a["group"]) != 1:
        return {}
    geo = _Geo(x.type.shape, w_shape, a)
    if _pointwise(geo) or _toeplitz(_live(x.type.shape, w_shape, a)[1]) is not None:
        return {}  # no columns to share
    if _single_channel(geo):
        # A grayscale first layer's columns are kh*kw times its input (LeNet's conv1: 2.5
        # MB for a 128 KB batch) and would stay alive through the whole backward pass, at
        # its memory peak; its filter gradient remakes them a few samples at a time.
        return {}
    if _small_columns(geo, x.type.dtype.itemsize):
        return {}
    pads, ohw = conv_geometry(x.type.shape, w_shape, a)
    geometry = (pair(a["kernel_size"]), pair(a["stride"]), pair(a["dilation"]), pads, ohw)
    return {1: ("im2col", id(x), geometry)}


def _scratch(outs, k, size, dtype) -> np.ndarray:
    """Workspace ``k`` (after the one output) if the runtime passed it, else a fresh array."""
    if len(outs) > 1 + k and outs[1 + k].size >= size:
        return outs[1 + k][:size]
    return np.empty(size, dtype)


def _pad_into(geo, x, flat, value=0.0):
    """``x`` padded by ``geo.pads`` in the flat scratch ``flat`` (``x`` itself if no pads)."""
    if not any(geo.pads):
        return x
    lay = geo.lay
    xp = flat.reshape(_padded_shape(geo, lay.channels(x.shape)))
    t, b, l, r = geo.pads
    h, w = geo.hw
    rows, cols = (1, 2) if lay.nhwc else (2, 3)
    for axis, lo, hi, size in ((rows, t, b, h), (cols, l, r, w)):
        for sl in (slice(0, lo), slice(lo + size, lo + size + hi)):
            idx = [slice(None)] * 4
            idx[axis] = sl
            xp[tuple(idx)] = value
    lay.crop(xp, geo.pads, geo.hw)[...] = x
    return xp


def _pointwise(geo) -> bool:
    """NHWC, group 1, a 1x1 kernel at stride 1 without padding: the input reshaped to
    (N*H*W, C) already is the im2col matrix, so no columns are copied (MobileNetV2's and
    GoogleNet's 1x1 convolutions)."""
    return (geo.lay.nhwc and geo.g == 1 and geo.khw == (1, 1) and geo.stride == (1, 1)
            and not any(geo.pads))


def _single_channel(geo) -> bool:
    """NHWC with one input channel and one group (a grayscale first layer): the columns are
    kept tap-major, (kh*kw, samples*OH*OW), filled by one copy whose inner runs are whole
    output rows (4x faster than gathering kh*kw-long window rows for LeNet's conv1), a
    chunk of samples at a time (``_single_channel_samples``)."""
    return geo.lay.nhwc and geo.g == 1 and geo.cg == 1


def _tap_major_columns(geo, xp, flat) -> np.ndarray:
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.khw, geo.stride, geo.dilation, geo.ohw
    sn, sy, sx, _ = xp.strides
    win = as_strided(xp, (kh, kw, xp.shape[0], oh, ow),
                     (sy * dh, sx * dw, sn, sy * sh, sx * sw), writeable=False)
    cols = flat.reshape(kh * kw, -1)
    np.copyto(cols.reshape(win.shape), win)
    return cols


SINGLE_CHANNEL_CHUNK = 3 << 16  # column values: LeNet's conv1 by 10 samples (6-13 ran alike)


def _single_channel_samples(geo) -> int:
    """Samples per chunk of a one-channel convolution's tap-major columns."""
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    return min(geo.n, max(1, SINGLE_CHANNEL_CHUNK // (kh * kw * oh * ow)))


def _single_channel_forward(geo, xp, w, out, flat) -> None:
    """Conv2D of one input channel through tap-major columns made a chunk of samples at a
    time (``flat`` holds one chunk; the columns are never kept for the filter gradient)."""
    (kh, kw), (oh, ow), og = geo.khw, geo.ohw, geo.og
    per = flat.size // (kh * kw * oh * ow)
    dst = out if out.flags.c_contiguous else np.empty(out.shape, out.dtype)
    rows = dst.reshape(geo.n, oh * ow, og)
    w2 = w.reshape(og, -1).T
    for s0 in range(0, geo.n, per):
        s1 = min(geo.n, s0 + per)
        cols = _tap_major_columns(geo, xp[s0:s1], flat[:(s1 - s0) * kh * kw * oh * ow])
        np.matmul(cols.T, w2, out=rows[s0:s1].reshape(-1, og))
    if dst is not out:
        out[...] = dst


def _single_channel_filter(geo, dy, xp, out, flat) -> None:
    """dw of a one-channel convolution from tap-major columns made a chunk of samples at
    a time (``flat`` holds one chunk), the chunks' products summed: ~130 us more than
    reading columns kept from the forward pass for LeNet's conv1, 2.5 MB less at the
    backward pass's peak."""
    (kh, kw), (oh, ow), og = geo.khw, geo.ohw, geo.og
    per = flat.size // (kh * kw * oh * ow)
    dst = out.reshape(og, -1)
    acc = dst if np.shares_memory(dst, out) else np.empty(dst.shape, dst.dtype)
    part = np.empty_like(acc)
    for s0 in range(0, geo.n, per):
        s1 = min(geo.n, s0 + per)
        cols = _tap_major_columns(geo, xp[s0:s1], flat[:(s1 - s0) * kh * kw * oh * ow])
        np.matmul(dy[s0:s1].reshape(-1, og).T, cols.T, out=part if s0 else acc)
        if s0:
            acc += part
    if acc is not dst:
        out[...] = acc.reshape(out.shape)


def _live_range(size, k, stride, dil, pad, out) -> tuple[int, int]:
    """[first, last + 1) of the kernel taps along one axis that read a real (unpadded)
    input row for at least one output row."""
    live = [i for i in range(k)
            if any(0 <= y * stride + i * dil - pad < size for y in range(out))]
    return (live[0], live[-1] + 1) if live else (0, k)


def _trimmed(geo, a):
    """NHWC group-1 convolutions whose outer kernel taps only ever read padding (a 3x3 at
    pad 1 over a 1x1 or 2x2-at-stride-2 input: ResNet18's last stage on 32x32 images) are
    the same convolution with the kernel cut to its live taps and the pads cut to match.
    Returns ((i0, i1), (j0, j1), attrs of the cut convolution), or None. The products skip
    only terms that multiply padding zeros: the sums are the same to float32 rounding."""
    if "cut" not in geo.__dict__:
        geo.cut = _live_cut(geo)
    if geo.cut is None:
        return None
    (i0, i1), (j0, j1), pads = geo.cut
    return (i0, i1), (j0, j1), {**a, "kernel_size": (i1 - i0, j1 - j0), "pad_mode": "pad",
                                "pad_list": pads}


def _live_cut(geo):
    """((i0, i1), (j0, j1), pads) of ``_trimmed``'s cut convolution, or None."""
    if not geo.lay.nhwc or geo.g != 1 or geo.khw == (1, 1):
        return None
    cut = []
    pads = []
    for axis in (0, 1):
        size, k, st, dl, out = (geo.hw[axis], geo.khw[axis], geo.stride[axis],
                                geo.dilation[axis], geo.ohw[axis])
        lo = geo.pads[2 * axis]
        i0, i1 = _live_range(size, k, st, dl, lo, out)
        new_lo = lo - i0 * dl
        new_hi = (out - 1) * st + (i1 - i0 - 1) * dl + 1 - size - new_lo
        if new_lo < 0 or new_hi < 0:
            return None
        cut.append((i0, i1))
        pads += [new_lo, new_hi]
    if cut == [(0, geo.khw[0]), (0, geo.khw[1])]:
        return None
    return cut[0], cut[1], tuple(pads)


# -- maps smaller than the kernel: one dense (Toeplitz) product ------------------------------
# When an input map has fewer pixels than the kernel has taps (ResNet18's 2x2 maps on 32x32
# images, W6), every window covers most of the map and im2col's columns are mostly padding.
# The convolution is then one product [N, H*W*C] x [H*W*C, OH*OW*O] with the weight spread
# into the block of each (input pixel, output pixel) pair it connects (zero elsewhere): H*W
# / (kh*kw) of im2col's multiply-adds (3x3 on 2x2: 4/9) and no columns. W6's [32,2,2,256]
# 3x3 layers, 1 thread: forward 1.42 -> 0.76 ms, input gradient 1.47 -> 0.72, filter
# gradient 1.39 -> 0.81 (the spread weight 0.1 ms, laid out [OH*OW*O, H*W*C] so each block
# copies whole C-long rows). The same products summed in another order: float rounding.
TOEPLITZ_MAX_VALUES = 1 << 22  # spread-weight values (16 MB of float32) at most


def _toeplitz(geo):
    """(pairs, empty) for a map smaller than its kernel: per connected (input pixel ri,
    output pixel pi) their tap (i, j), and the pairs no tap connects; None otherwise."""
    if "toeplitz" not in geo.__dict__:
        geo.toeplitz = _toeplitz_pairs(geo)
    return geo.toeplitz


def _toeplitz_pairs(geo):
    (h, w), (kh, kw), (oh, ow) = geo.hw, geo.khw, geo.ohw
    if (not geo.lay.nhwc or geo.g != 1 or _pointwise(geo) or h * w >= kh * kw
            or h * w * geo.cg * oh * ow * geo.o > TOEPLITZ_MAX_VALUES):
        return None
    (sh, sw), (dh, dw), (t, _, l, _) = geo.stride, geo.dilation, geo.pads
    pairs, empty = [], []
    for p in range(oh):
        for q in range(ow):
            for r in range(h):
                for c in range(w):
                    i, ri = divmod(r + t - p * sh, dh)
                    j, rj = divmod(c + l - q * sw, dw)
                    if ri == 0 and rj == 0 and 0 <= i < kh and 0 <= j < kw:
                        pairs.append((r * w + c, p * ow + q, i, j))
                    else:
                        empty.append((r * w + c, p * ow + q))
    return pairs, empty


def _toeplitz_size(geo) -> int:
    (h, w), (oh, ow) = geo.hw, geo.ohw
    return h * w * geo.cg * oh * ow * geo.o


def _spread_weight(geo, w, flat):
    """The weight spread into ``flat`` as [OH*OW*O, H*W*C]: row block of output pixel pi,
    column block of input pixel ri holds tap (i, j)'s [O, C] weights, or zeros."""
    (h, wd), (oh, ow) = geo.hw, geo.ohw
    spread = flat[:_toeplitz_size(geo)].reshape(oh * ow, geo.o, h * wd, geo.cg)
    pairs, empty = _toeplitz(geo)
    for ri, pi in empty:
        spread[pi, :, ri] = 0
    for ri, pi, i, j in pairs:
        spread[pi, :, ri] = w[:, i, j, :]
    return spread.reshape(oh * ow * geo.o, h * wd * geo.cg)


def _dense_filter(geo, dy, x, rows, flat, o0, o1) -> None:
    """Output channels [o0, o1) of the filter gradient of a ``_toeplitz`` convolution into
    ``rows`` (those channels' [o1 - o0, kh, kw, C]): the gradient of the spread weight (dy^T
    x, per output pixel) folded back onto the taps."""
    (h, wd), (oh, ow) = geo.hw, geo.ohw
    n, o, c = geo.n, geo.o, geo.cg
    grad = flat[:_toeplitz_size(geo)].reshape(oh * ow, o, h * wd * c)
    dy2, x2 = dy.reshape(n, oh * ow, o), x.reshape(n, -1)
    for pi in range(oh * ow):
        np.matmul(dy2[:, pi, o0:o1].T, x2, out=grad[pi, o0:o1])
    blocks = grad.reshape(oh * ow, o, h * wd, c)
    pairs, _ = _toeplitz(geo)
    done = set()
    for ri, pi, i, j in pairs:
        if (i, j) in done:
            rows[:, i, j, :] += blocks[pi, o0:o1, ri]
        else:
            rows[:, i, j, :] = blocks[pi, o0:o1, ri]
            done.add((i, j))
    for i in range(geo.khw[0]):
        for j in range(geo.khw[1]):
            if (i, j) not in done:  # a tap that only ever meets padding
                rows[:, i, j, :] = 0


# -- forward -------------------------------------------------------------------------------
DEPTHWISE_BLOCK_BYTES = 1 << 18  # output bytes per block: the block and its taps stay in L2


def _depthwise_spans(n, oh, rows):
    """Blocks (n0, n1, r0, r1) of about ``rows`` output rows: row runs of one sample, or,
    when a sample's whole output fits, runs of whole samples (W4's 14x14 and 7x7 layers
    made 2-4x more calls per element in one-sample blocks: 40% of their time)."""
    if rows >= oh:
        per = max(1, rows // oh)
        return [(n0, min(n, n0 + per), 0, oh) for n0 in range(0, n, per)]
    return [(i, i + 1, r0, min(oh, r0 + rows)) for i in range(n) for r0 in range(0, oh, rows)]


# Attribute a caller may add: the block buffers' bytes (input rows and products together)
# instead of blocks of ``DEPTHWISE_BLOCK_BYTES`` of output.
DEPTHWISE_BUFFER = "_depthwise_buffer_bytes"


def _depthwise_rows(geo, itemsize, buffer_bytes=None) -> int:
    """Output rows per block for ``_depthwise_spans`` (OH or more: whole samples):
    ``DEPTHWISE_BLOCK_BYTES`` of output, or, given ``buffer_bytes``, the most whose buffers
    (with the weights tiled per tap) take at most that: a stride-2 layer's input rows are
    ~4x its output block. Blocks change no arithmetic: the same bits either way."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.khw, geo.stride, geo.dilation, geo.ohw
    c = geo.o
    if buffer_bytes is None:
        return max(1, DEPTHWISE_BLOCK_BYTES // max(1, ow * c * itemsize))
    pw = -(-((ow - 1) * sw + (kw - 1) * dw + 1) // sw)

    def cost(r):  # the input rows, the products and the tiled weights
        per, r = (r // oh, oh) if r >= oh else (1, r)
        return (per * (sw * ((r - 1) * sh + (kh - 1) * dh + 1) * pw + r * ow)
                + kh * kw * ow) * c * itemsize
    lo, hi = 1, geo.n * oh  # the most rows within the budget (at least one)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if cost(mid) <= buffer_bytes:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _depthwise_nhwc(geo, x, w, out, buffer_bytes=None):
    """Depthwise NHWC convolution (channel multiplier 1) in blocks of output rows: the
    block's padded input rows are copied into a small buffer and every kernel tap is
    multiplied and added while they are in cache (whole-batch taps streamed the output
    through memory 2*kh*kw times; MobileNetV2's [16,112,112,96] layer 143 -> 70 ms).
    The buffer is split by column phase (column q goes to phase q % stride), so every tap
    reads whole contiguous OW*C runs: each multiply-add is one inner loop of OW*C elements
    against the tap's weights tiled OW times (a per-pixel inner loop of C elements was 2-3x
    slower for C = 32..192). A block is rows of one sample or several whole samples. The
    buffer's padding columns are zeroed once and its padding rows only where a block
    reaches the border (zeroing the whole buffer per block was one more pass). Same
    products, summed in the same tap order as before."""
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.khw, geo.stride, geo.dilation, geo.ohw
    t, _, l, _ = geo.pads
    h, wd = geo.hw
    c = x.shape[3]
    spans = _depthwise_spans(x.shape[0], oh, _depthwise_rows(geo, x.itemsize, buffer_bytes))
    nb = max(n1 - n0 for n0, n1, _, _ in spans)
    rmax = max(r1 - r0 for _, _, r0, r1 in spans)
    span_w = (ow - 1) * sw + (kw - 1) * dw + 1  # padded input columns the windows read
    pw = -(-span_w // sw)  # columns per phase
    buf = np.zeros((sw, nb, (rmax - 1) * sh + (kh - 1) * dh + 1, pw, c), x.dtype)
    tmp = np.empty((nb, rmax, ow * c), x.dtype)
    taps = [(i, (j * dw) % sw, (j * dw) // sw, np.tile(w[:, i, j, 0], ow))
            for i in range(kh) for j in range(kw)]
    # Per phase: the phase columns [m0, m1) that hold real input, from input column x0.
    phases = []
    for p in range(sw):
        m0 = max(0, -(-(l - p) // sw))
        m1 = min(pw, -(-(l + wd - p) // sw), -(-(span_w - p) // sw))
        phases.append((p, m0, m1, p + sw * m0 - l))
    for n0, n1, r0, r1 in spans:
        k, r = n1 - n0, r1 - r0
        top = r0 * sh - t  # first input row the block reads (may be padding)
        need = (r - 1) * sh + (kh - 1) * dh + 1
        b = buf[:, :k, :need]
        lo, hi = max(top, 0), min(top + need, h)
        b[:, :, :max(0, min(lo, top + need) - top)] = 0  # padding rows above
        b[:, :, max(0, hi - top):] = 0  # and below
        if hi > lo:
            for p, m0, m1, x0 in phases:
                if m1 > m0:
                    b[p, :, lo - top:hi - top, m0:m1] = x[n0:n1, lo:hi,
                                                         x0:x0 + (m1 - m0 - 1) * sw + 1:sw]
        o, tm = out[n0:n1, r0:r1].reshape(k, r, ow * c), tmp[:k, :r]
        for j, (i, p, m, wt) in enumerate(taps):
            src = b[p, :, i * dh:i * dh + (r - 1) * sh + 1:sh, m:m + ow].reshape(k, r, ow * c)
            if j == 0:
                np.multiply(src, wt, out=o)
            else:
                np.multiply(src, wt, out=tm)
                o += tm


def _conv_forward(x, w, out, a, outs=()):
    geo = _geo(x.shape, w.shape, a)
    cut = _trimmed(geo, a)
    if cut is not None:
        (i0, i1), (j0, j1), a = cut
        w = np.ascontiguousarray(w[:, i0:i1, j0:j1, :])
        geo = _geo(x.shape, w.shape, a)
    if geo.depthwise and geo.lay.nhwc and geo.og == 1:
        _depthwise_nhwc(geo, x, w, out, a.get(DEPTHWISE_BUFFER))
        return
    if geo.depthwise:
        xp = geo.lay.pad(x, geo.pads)
        src = geo.spread(xp)
        out[...] = 0
        for i, j, tap in geo.taps():
            out += src[tap] * geo.weight_tap(w, i, j)
        return
    if _pointwise(geo):
        dst = out.reshape(-1, geo.o)
        np.matmul(x.reshape(-1, x.shape[3]), w.reshape(geo.o, -1).T, out=dst)
        if not np.shares_memory(dst, out):
            out[...] = dst.reshape(out.shape)
        return
    if _toeplitz(geo) is not None and out.flags.c_contiguous:
        spread = _spread_weight(geo, w, _scratch(outs, 1, _toeplitz_size(geo), x.dtype))
        np.matmul(x.reshape(geo.n, -1), spread.T, out=out.reshape(geo.n, -1))
        return
    og, cg, lay = geo.og, geo.cg, geo.lay
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    xp = _pad_into(geo, x, _scratch(outs, 0, int(np.prod(_padded_shape(geo, lay.channels(
        x.shape)))) if any(geo.pads) else 0, x.dtype))
    if _single_channel(geo):
        per = _single_channel_samples(geo)
        _single_channel_forward(geo, xp, w, out, _scratch(outs, 1, per * oh * ow * kh * kw,
                                                          x.dtype))
        return
    kept = a.get(COLUMNS_KEPT, False)  # a piece of a split call: every column is read later
    if (not kept and _halves(geo, x.dtype.itemsize) and out.flags.c_contiguous
            and not np.may_share_memory(out, xp)):
        flat = _scratch(outs, 1, -(-geo.n // 2) * oh * ow * kh * kw * cg, x.dtype)
        _chunked_columns_forward(geo, xp, w.reshape(geo.o, -1), out, flat)
        return
    if (not kept and a.get(WORKSPACE_PRIVATE) and _chunkable(geo)
            and not np.may_share_memory(out, xp)):
        pixels = _chunk_pixels(geo, x.dtype.itemsize, a.get(COLUMN_CHUNK))
        flat = _scratch(outs, 1, pixels * kh * kw * cg, x.dtype)
        _chunked_columns_forward(geo, xp, w.reshape(geo.o, -1), out, flat)
        return
    flat = _scratch(outs, 1, geo.n * oh * ow * kh * kw * cg, x.dtype)
    for k in range(geo.g):
        win = geo.windows(xp[lay.channel_slice(k * cg, (k + 1) * cg)])
        w2 = w[k * og:(k + 1) * og].reshape(og, -1)
        dst_view = out[lay.channel_slice(k * og, (k + 1) * og)]
        if 1 not in a.get(WORKSPACE_FILLED, ()):
            np.copyto(flat.reshape(win.shape), win)  # the im2col copy, into the scratch
        if lay.nhwc:
            cols = flat.reshape(-1, w2.shape[1])  # (N*OH*OW, kh*kw*C)
            dst = out.reshape(-1, og) if geo.g == 1 else None
            if dst is not None and np.may_share_memory(dst, out):
                np.matmul(cols, w2.T, out=dst)  # straight into the NHWC output
            else:
                dst_view[...] = (cols @ w2.T).reshape(dst_view.shape)
        else:
            cols = flat.reshape(geo.n, w2.shape[1], -1)  # (N, C*kh*kw, OH*OW)
            dst = dst_view.reshape(geo.n, og, -1)
            # Batched BLAS matmul straight into the output (a view for group 1).
            np.matmul(w2, cols, out=dst)
            if not np.may_share_memory(dst, out):  # reshape had to copy
                dst_view[...] = dst.reshape(dst_view.shape)


# -- input gradient by row blocks -------------------------------------------------------------
# Conv2DBackpropInput of an NHWC group-1 convolution with few input channels (LeNet's conv2:
# 6) spends its time in kh*kw products (N*OH*OW, O) x (O, C) whose C-wide output BLAS runs at
# half speed, and in kh*kw adds. Here bx neighbouring dy pixels of a row go into one product
# with a banded ("Toeplitz") matrix that holds w at each pixel's column offset, so one product
# per kernel row gives, per block, the whole span of dx row those pixels reach: kh products
# (C * span wide) and kh * OW/bx adds of span*C-long runs instead of kh*kw of each. The band's
# zeros cost (span / (bx*sw)) times the useful multiplies: bx <= kw keeps that under 2x.
# Measured on [32,14,14,C] 5x5 and [32,16,16,C] 3x3 'same' (O 16-32): faster for C up to
# 12 at kw 5 (C 6: 580 -> 380 us) and up to 6 at kw 3, slower from 16 and 8: C <= 2*kw.
ROW_BLOCK_CHANNELS_PER_TAP = 2


def _row_block(geo) -> int:
    """Dy pixels per row block (a divisor of OW, at most kw), or 0 for the per-tap path."""
    (_, kw), (_, ow) = geo.khw, geo.ohw
    if (not geo.lay.nhwc or geo.g != 1 or kw == 1
            or geo.cg > ROW_BLOCK_CHANNELS_PER_TAP * kw):
        return 0
    bx = max(d for d in range(1, min(kw, ow) + 1) if ow % d == 0)
    return bx if bx > 1 else 0


def _row_block_span(geo, bx) -> int:
    """Padded dx columns that bx neighbouring dy pixels reach."""
    return (bx - 1) * geo.stride[1] + (geo.khw[1] - 1) * geo.dilation[1] + 1


def _row_block_scratch(geo) -> int:
    """Elements of the band (kh, bx*O, span*C) plus one kernel row's products."""
    bx = _row_block(geo)
    span, (kh, _), (oh, ow) = _row_block_span(geo, bx), geo.khw, geo.ohw
    return (kh * bx * geo.o + geo.n * oh * (ow // bx)) * span * geo.cg


def _band(geo, w, bx, flat) -> np.ndarray:
    """(kh, bx*O, span*C): row i holds, for each pixel x of a block, w[:, i] at columns
    x*sw + j*dw of the block's dx span, zeros elsewhere."""
    (kh, kw), sw, dw, o, c = geo.khw, geo.stride[1], geo.dilation[1], geo.o, geo.cg
    span = _row_block_span(geo, bx)
    band = flat[:kh * bx * o * span * c].reshape(kh, bx, o, span, c)
    band[...] = 0
    wi = w.transpose(1, 0, 2, 3)  # (kh, O, kw, C)
    for x in range(bx):
        band[:, x, :, x * sw:x * sw + (kw - 1) * dw + 1:dw] = wi
    return band.reshape(kh, bx * o, span * c)


def _backprop_input_row_blocks(geo, dy, w, dxp, flat) -> None:
    """Add the input gradient into the zeroed (padded) ``dxp`` by row blocks (above)."""
    (kh, _), (sh, _), (dh, _), (oh, ow) = geo.khw, geo.stride, geo.dilation, geo.ohw
    bx, c, n = _row_block(geo), geo.cg, geo.n
    span, nb = _row_block_span(geo, bx), ow // bx
    band = _band(geo, w, bx, flat)
    prod = flat[band.size:band.size + n * oh * nb * span * c].reshape(-1, span * c)
    blocks = prod.reshape(n, oh, nb, span * c)
    dyb = dy.reshape(-1, bx * geo.o)  # (N*OH*OW/bx, bx*O): rows are blocks of a dy row
    dxr = dxp.reshape(n, dxp.shape[1], -1)  # padded dx rows of Wp*C
    step = bx * geo.stride[1] * c
    for i in range(kh):
        np.matmul(dyb, band[i], out=prod)
        rows = dxr[:, i * dh:i * dh + (oh - 1) * sh + 1:sh]
        for b in range(nb):
            rows[:, :, b * step:b * step + span * c] += blocks[:, :, b]


# -- gradients -----------------------------------------------------------------------------
def _conv_backprop_input(dy, w, out, a, outs=()):
    geo = _geo(out.shape, w.shape, a)
    cut = _trimmed(geo, a)
    if cut is not None:
        (i0, i1), (j0, j1), a = cut
        w = w[:, i0:i1, j0:j1, :]
        geo = _geo(out.shape, w.shape, a)
    if _toeplitz(geo) is not None and out.flags.c_contiguous:
        spread = _spread_weight(geo, w, _scratch(outs, 1, _toeplitz_size(geo), dy.dtype))
        np.matmul(dy.reshape(geo.n, -1), spread, out=out.reshape(geo.n, -1))
        return
    lay, og, cg = geo.lay, geo.og, geo.cg
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    t, b, l, r = geo.pads
    h, wd = geo.hw
    if geo.depthwise:
        dxp = np.zeros(lay.shape(geo.n, lay.channels(out.shape), h + t + b, wd + l + r),
                       dy.dtype)
        if geo.og == 1:
            for i, j, tap in geo.taps():
                dxp[tap] += dy * geo.weight_tap(w, i, j)
        else:  # sum the multiplier's outputs back onto their input channel
            spread = np.zeros(lay.shape(geo.n, geo.o, h + t + b, wd + l + r), dy.dtype)
            for i, j, tap in geo.taps():
                spread[tap] += dy * geo.weight_tap(w, i, j)
            axis = lay.channel_axis
            grouped = spread.reshape(spread.shape[:axis] + (geo.g, og) + spread.shape[axis + 1:])
            dxp = grouped.sum(axis=axis + 1)
        out[...] = lay.crop(dxp, geo.pads, geo.hw)
        return
    # Without padding the input gradient is summed straight into ``out``.
    if any(geo.pads):
        dxp = _scratch(outs, 0, int(np.prod(_padded_shape(geo, lay.channels(out.shape)))),
                       dy.dtype).reshape(_padded_shape(geo, lay.channels(out.shape)))
    else:
        dxp = out
    dxp[...] = 0
    if (_row_block(geo) and dxp.flags.c_contiguous and np.isfinite(dy).all()
            and np.isfinite(w).all()):
        # (a non-finite dy or w times the band's zeros would be NaN where dx is not)
        _backprop_input_row_blocks(geo, dy, w, dxp, _scratch(outs, 1, _row_block_scratch(geo),
                                                             dy.dtype))
        if dxp is not out:
            out[...] = lay.crop(dxp, geo.pads, geo.hw)
        return
    flat = _scratch(outs, 1, geo.n * oh * ow * (1 if lay.nhwc else kh * kw) * cg, dy.dtype)
    for k in range(geo.g):
        dst = dxp[lay.channel_slice(k * cg, (k + 1) * cg)]
        if lay.nhwc:
            # Per kernel position one small product (N*OH*OW, og) x (og, C/g) into a
            # contiguous scratch, added at once: the add's rows are whole OW*C runs, which
            # NumPy moves in one inner loop (adding from full (..., kh, kw, C) columns was
            # 2x slower: an inner loop of C elements).
            dy2 = dy[..., k * og:(k + 1) * og].reshape(-1, og)
            part = flat[:dy2.shape[0] * cg].reshape(-1, cg)
            wk = w[k * og:(k + 1) * og]
            for i, j, tap in geo.taps():
                np.matmul(dy2, wk[:, i, j, :], out=part)
                dst[tap] += part.reshape(geo.n, oh, ow, cg)
        else:
            w2 = w[k * og:(k + 1) * og].reshape(og, -1)
            dy3 = dy[:, k * og:(k + 1) * og].reshape(geo.n, og, oh * ow)
            dcols = np.matmul(w2.T, dy3, out=flat.reshape(geo.n, w2.shape[1], oh * ow))
            dcols = dcols.reshape(geo.n, cg, kh, kw, oh, ow)
            for i, j, tap in geo.taps():
                dst[tap] += dcols[:, :, i, j]
    if dxp is not out:
        out[...] = lay.crop(dxp, geo.pads, geo.hw)


def _live_block(out, cut):
    """The live taps' block of filter gradient ``out`` (OHWI) under ``_trimmed``'s ``cut``,
    the dead taps' gradient zeroed (they only read padding); ``out`` itself without one."""
    if cut is None:
        return out
    (i0, i1), (j0, j1), _ = cut
    out[:, :i0] = 0
    out[:, i1:] = 0
    out[:, i0:i1, :j0] = 0
    out[:, i0:i1, j1:] = 0
    return out[:, i0:i1, j0:j1, :]


def _live_filter(x, out, a):
    """(geo, attrs, out) of the convolution a filter gradient computes: ``_trimmed``'s cut
    one (``out`` its ``_live_block``), else the call's own."""
    geo, live, attrs = _live(x.shape, out.shape, a)
    return live, attrs, _live_block(out, _trimmed(geo, a))


def _conv_backprop_filter(dy, x, out, a, outs=()):
    geo, a, out = _live_filter(x, out, a)
    if _toeplitz(geo) is not None:
        _dense_filter(geo, dy, x, out, _scratch(outs, 1, _toeplitz_size(geo), dy.dtype), 0,
                      geo.o)
        return
    lay, og, cg = geo.lay, geo.og, geo.cg
    if geo.depthwise:
        xp = lay.pad(x, geo.pads)
        src = geo.spread(xp)
        for i, j, tap in geo.taps():
            dwij = np.einsum("nhwc,nhwc->c" if lay.nhwc else "nchw,nchw->c", dy, src[tap])
            if lay.nhwc:
                out[:, i, j, 0] = dwij
            else:
                out[:, 0, i, j] = dwij
        return
    if _pointwise(geo):
        dst = out.reshape(og, -1)
        np.matmul(dy.reshape(-1, og).T, x.reshape(-1, x.shape[3]), out=dst)
        if not np.shares_memory(dst, out):
            out[...] = dst.reshape(out.shape)
        return
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    # The forward Conv2D's columns of this x (small ones are never shared: columns_key).
    filled = 1 in a.get(WORKSPACE_FILLED, ()) and not _small_columns(geo, x.dtype.itemsize)
    if _single_channel(geo):  # never shared: remade a chunk of samples at a time
        per = _single_channel_samples(geo)
        xp = _pad_into(geo, x, _scratch(outs, 0, int(np.prod(_padded_shape(
            geo, lay.channels(x.shape)))) if any(geo.pads) else 0, x.dtype))
        _single_channel_filter(geo, dy, xp, out, _scratch(outs, 1, per * oh * ow * kh * kw,
                                                          x.dtype))
        return
    if filled:
        flat = _scratch(outs, 1, geo.n * oh * ow * kh * kw * cg, x.dtype)
        dst = out.reshape(og, -1)
        np.matmul(dy.reshape(-1, og).T, flat.reshape(-1, dst.shape[1]), out=dst)
        if not np.shares_memory(dst, out):
            out[...] = dst.reshape(out.shape)
        return
    xp = _pad_into(geo, x, _scratch(outs, 0, int(np.prod(_padded_shape(geo, lay.channels(
        x.shape)))) if any(geo.pads) else 0, x.dtype))
    flat = _scratch(outs, 1, geo.n * oh * ow * kh * kw * cg, x.dtype)
    for k in range(geo.g):
        win = geo.windows(xp[lay.channel_slice(k * cg, (k + 1) * cg)])
        dst_view = out[k * og:(k + 1) * og]
        width = dst_view[0].size
        if lay.nhwc:
            np.copyto(flat.reshape(win.shape), win)
            cols = flat.reshape(-1, width)           # (N*OH*OW, kh*kw*C)
            dy2 = dy[..., k * og:(k + 1) * og].reshape(-1, og)
            dwk = dy2.T @ cols
        else:
            # Columns laid out (C*kh*kw, N*OH*OW) so the whole batch is one BLAS matmul.
            src = win.transpose(1, 2, 3, 0, 4, 5)
            np.copyto(flat.reshape(src.shape), src)
            cols = flat.reshape(width, -1)
            dy2 = dy[:, k * og:(k + 1) * og].transpose(1, 0, 2, 3).reshape(og, -1)
            dwk = dy2 @ cols.T
        dst_view[...] = dwk.reshape(dst_view.shape)


def _conv_attrs(node, **extra):
    return {**{k: node.attrs[k] for k in CONV_ATTRS}, **extra}


@op
class Conv2D(OpDef):
    attrs = dict(CONV_ATTRS)

    def infer(ins, a):
        x, w = ins
        if x.dtype != w.dtype:
            raise ValueError(f"x dtype {x.dtype.name} differs from w dtype {w.dtype.name}")
        _, (oh, ow) = conv_geometry(x.shape, w.shape, a)
        return [TensorType(Layout(a["format"]).shape(x.shape[0], w.shape[0], oh, ow), x.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_forward(ins[0], ins[1], outs[0], a, outs)

    def workspace(ins, a):
        return conv_workspace(ins[0].shape, ins[1].shape, a, ins[0].dtype,
                              chunked=bool(a.get(WORKSPACE_PRIVATE)), forward=True)

    def workspace_key(node):
        return columns_key(node.inputs[0], node.inputs[1].type.shape, node.attrs)

    def grad(g, node, douts):
        (dy,) = douts
        x, w = node.inputs
        lay = Layout(node.attrs["format"])
        dx = dw = None
        if g.wants(x):  # never for the network's data input
            dx = g.emit("Conv2DBackpropInput", [dy, w],
                        **_conv_attrs(node, input_sizes=lay.to_nchw(x.type.shape)))
        if g.wants(w):
            o, (kh, kw) = w.type.shape[0], lay.weight_kernel(w.type.shape)
            oihw = (o, lay.weight_in_channels(w.type.shape), kh, kw)
            dw = g.emit("Conv2DBackpropFilter", [dy, x], **_conv_attrs(node, filter_sizes=oihw))
        return [dx, dw]


def _sizes(a, key) -> tuple[int, ...]:
    sizes = tuple(int(d) for d in a[key])
    if len(sizes) != 4:
        raise ValueError(f"{key} must hold 4 values, got {list(sizes)}")
    return Layout(a["format"]).from_nchw(sizes)


def _check_dy(dy, x_shape, w_shape, a):
    _, (oh, ow) = conv_geometry(x_shape, w_shape, a)
    want = Layout(a["format"]).shape(x_shape[0], w_shape[0], oh, ow)
    if len(dy.shape) != 4 or tuple(dy.shape) != want:
        raise ValueError(f"dy {list(dy.shape)} does not match the convolution's output "
                         f"{list(want)}")


@op
class Conv2DBackpropInput(OpDef):
    """dx of Conv2D from (dy, w); ``input_sizes`` is x's shape in NCHW order."""

    attrs = {**CONV_ATTRS, "input_sizes": REQUIRED}

    def infer(ins, a):
        dy, w = ins
        x_shape = _sizes(a, "input_sizes")
        _check_dy(dy, x_shape, w.shape, a)
        return [TensorType(x_shape, dy.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_backprop_input(ins[0], ins[1], outs[0], a, outs)

    def workspace(ins, a):
        return conv_workspace(_sizes(a, "input_sizes"), ins[1].shape, a, ins[0].dtype,
                              taps=False)

    def grad(g, node, douts):
        # In a forward pass this op is a transposed convolution (nn.Conv2dTranspose, which
        # MindSpore exports as Conv2DTranspose): its first input's gradient is the
        # convolution it transposes, Conv2D(dout, w), and its weight's the filter gradient
        # with the roles swapped, Conv2DBackpropFilter(x, dout), as MindSpore's bprop.
        (dz,) = douts
        x, w = node.inputs
        lay = Layout(node.attrs["format"])
        dx = dw = None
        if g.wants(x):
            dx = g.emit("Conv2D", [dz, w], **_conv_attrs(node))
        if g.wants(w):
            o, (kh, kw) = w.type.shape[0], lay.weight_kernel(w.type.shape)
            oihw = (o, lay.weight_in_channels(w.type.shape), kh, kw)
            dw = g.emit("Conv2DBackpropFilter", [x, dz], **_conv_attrs(node, filter_sizes=oihw))
        return [dx, dw]


@op
class Conv2DBackpropFilter(OpDef):
    """dw of Conv2D from (dy, x); ``filter_sizes`` is w's shape in OIHW order."""

    attrs = {**CONV_ATTRS, "filter_sizes": REQUIRED}

    def infer(ins, a):
        dy, x = ins
        w_shape = _sizes(a, "filter_sizes")
        _check_dy(dy, x.shape, w_shape, a)
        return [TensorType(w_shape, dy.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_backprop_filter(ins[0], ins[1], outs[0], a, outs)

    def workspace(ins, a):
        return conv_workspace(ins[1].shape, _sizes(a, "filter_sizes"), a, ins[0].dtype)

    def workspace_key(node):
        return columns_key(node.inputs[1], _sizes(node.attrs, "filter_sizes"), node.attrs)


def _live_pairs(size: int, k: int, stride: int, dil: int, pad: int, out: int) -> int:
    """(output position, tap) pairs along one axis whose input position is not padding."""
    return sum(1 for o in range(out) for t in range(k) if 0 <= o * stride + t * dil - pad < size)


def live_products(op: str, in_shapes, attrs) -> int:
    """Multiply-adds of a Conv2D / Conv2DBackpropInput / Conv2DBackpropFilter call that
    read real input (not padding): what the kernels compute where they cut the kernel to
    its live taps or spread it over small maps (a 3x3 over ResNet18's 1x1 maps: 1/9 of
    the full count). For schedules (runtime/overlap.py)."""
    if op == "Conv2D":
        x_shape, w_shape = in_shapes[0], in_shapes[1]
    elif op == "Conv2DBackpropInput":
        x_shape, w_shape = _sizes(attrs, "input_sizes"), in_shapes[1]
    else:
        x_shape, w_shape = in_shapes[1], _sizes(attrs, "filter_sizes")
    geo = _geo(x_shape, w_shape, attrs)
    pairs = 1
    for axis in (0, 1):
        pairs *= _live_pairs(geo.hw[axis], geo.khw[axis], geo.stride[axis],
                             geo.dilation[axis], geo.pads[2 * axis], geo.ohw[axis])
    return geo.n * pairs * geo.cg * geo.o


# -- pieces for two or more threads (runtime/rewrite_parallel.py) ---------------------------
# A convolution whose im2col columns the forward pass makes and its filter gradient reads
# (``columns_key``) cannot be cut into whole-kernel calls on parts of the batch: the filter
# gradient sums over every sample. These make the kernels' work as zero-argument calls a
# pool runs at once: columns and forward products by samples (each piece writes its own
# samples' rows of the shared columns), filter products by output channels (each piece its
# own rows of the gradient, every term summed as in the one product).

def _live(x_shape, w_shape, a):
    """(geo, geo of the convolution the kernels compute (``_trimmed``'s cut or the same),
    its attributes)."""
    geo = _geo(x_shape, w_shape, a)
    cut = _trimmed(geo, a)
    if cut is None:
        return geo, geo, a
    (i0, i1), (j0, j1), attrs = cut
    return geo, _geo(x_shape, (geo.o, i1 - i0, j1 - j0, geo.cg), attrs), attrs


def _per_sample(live, x, outs):
    """(padded input values, column values) per sample, and workspaces 0 and 1 flat, or
    None when they do not hold the whole batch's."""
    (kh, kw), (oh, ow) = live.khw, live.ohw
    per_cols = oh * ow * kh * kw * live.cg
    per_pad = int(np.prod(_padded_shape(live, live.lay.channels(x.shape)))) // live.n \
        if any(live.pads) else 0
    if len(outs) < 3:
        return None
    pad, cols = outs[1].reshape(-1), outs[2].reshape(-1)
    if cols.size < live.n * per_cols or pad.size < live.n * per_pad:
        return None
    return per_pad, per_cols, pad, cols


def forward_pieces(x, w, out, a, outs, cuts):
    """Calls that together run Conv2D's kernel on ``x`` (``outs``: the output and the
    workspaces, as bound), one per sample range of ``cuts``, each filling its samples' rows
    of the columns in workspace 1; None where the call takes another path."""
    geo, live, _ = _live(x.shape, w.shape, a)
    if (geo.depthwise or not live.lay.nhwc or live.g != 1 or _single_channel(live)
            or 1 in a.get(WORKSPACE_FILLED, ()) or not out.flags.c_contiguous):
        return None
    if _pointwise(live):  # no columns: plain pieces of the batch
        return [lambda lo=lo, hi=hi: _conv_forward(x[lo:hi], w, out[lo:hi], a, (out[lo:hi],))
                for lo, hi in cuts]
    found = _per_sample(live, x, outs)
    if found is None:
        return None
    per_pad, per_cols, pad, cols = found
    kept = {**a, COLUMNS_KEPT: True}
    kept.pop(WORKSPACE_PRIVATE, None)

    def piece(lo, hi):
        part = (out[lo:hi], pad[lo * per_pad:hi * per_pad], cols[lo * per_cols:hi * per_cols])
        return lambda: _conv_forward(x[lo:hi], w, part[0], kept, part)
    return [piece(lo, hi) for lo, hi in cuts]


def channel_pieces(x, w, out, a, outs, cuts, scratch):
    """Calls that together run Conv2D's kernel on ``x`` as one per output-channel range of
    ``cuts``, where the kernel's one product has a weight operand made from (or cut out
    of) w and few rows: the dense small-map form (``_toeplitz``) and a kernel cut to one
    tap (``_trimmed`` to a 1x1). Pieces of the batch each made (or read) all of that operand
    for half the rows: W6's 2x2 and 1x1 layers ran no faster at 2 threads. Each piece makes
    only its channels' rows. ``scratch(part, size)``: a flat scratch of a part (part 0
    uses the call's planned workspace when it is there). None for other paths."""
    geo, live, _ = _live(x.shape, w.shape, a)
    if (not live.lay.nhwc or live.g != 1 or geo.depthwise or not out.flags.c_contiguous
            or len(cuts) < 2):
        return None
    n = x.shape[0]
    if _pointwise(live) and live is not geo:  # a 1x1 cut: the weight's live tap, strided
        (i0, _), (j0, _), _ = geo.cut
        w2, x2, out2 = w[:, i0, j0, :], x.reshape(n, -1), out.reshape(n, -1)
        return [lambda lo=lo, hi=hi: np.matmul(x2, w2[lo:hi].T, out=out2[:, lo:hi])
                for lo, hi in cuts]
    if live is not geo or _toeplitz(geo) is None:
        return None
    (oh, ow), o = geo.ohw, geo.o
    wide = out.reshape(n, oh * ow, o)

    def piece(part, lo, hi):
        pa = {**a, "out_channel": hi - lo}
        pgeo = _geo(x.shape, (hi - lo,) + w.shape[1:], pa)
        size = _toeplitz_size(pgeo)
        need = size + n * oh * ow * (hi - lo)
        # part 0 runs in the caller: the call's planned spread workspace holds its share
        planned = part == 0 and len(outs) > 2 and outs[2].size >= need
        flat = outs[2].reshape(-1)[:need] if planned else scratch(part, need)
        tmp = flat[size:].reshape(n, oh * ow, hi - lo)

        def run():
            spread = _spread_weight(pgeo, w[lo:hi], flat)
            np.matmul(x.reshape(n, -1), spread.T, out=tmp.reshape(n, -1))
            wide[:, :, lo:hi] = tmp
        return run
    return [piece(p, lo, hi) for p, (lo, hi) in enumerate(cuts)]


def filter_pieces(dy, x, out, a, outs, sample_cuts, channel_cuts):
    """(column calls, product calls) that together run Conv2DBackpropFilter's kernel: the
    columns by sample ranges (none when the forward pass filled them, or for a 1x1/1
    convolution, whose input is its columns), then the products by output-channel ranges;
    None where the call takes another path (depthwise, one input channel, NCHW)."""
    geo, live, live_attrs = _live(x.shape, out.shape, a)
    if (geo.depthwise or not live.lay.nhwc or live.g != 1 or _single_channel(live)
            or not dy.flags.c_contiguous):
        return None  # (the calls keep views made now: a reshaped copy would go stale)
    cut = _trimmed(geo, a)
    if _toeplitz(live) is not None:  # no columns: the spread weight's gradient, by channels
        if len(outs) < 3 or outs[2].size < _toeplitz_size(live):
            return None
        flat = outs[2].reshape(-1)

        def dense(o0, o1):
            return lambda: _dense_filter(live, dy, x, _live_block(out[o0:o1], cut), flat,
                                         o0, o1)
        return [], [dense(o0, o1) for o0, o1 in channel_cuts]
    dy2 = dy.reshape(-1, geo.o)
    if _pointwise(live):
        if not x.flags.c_contiguous:
            return None
        matrix, columns = x.reshape(-1, x.shape[3]), []
    else:
        found = _per_sample(live, x, outs)
        if found is None:
            return None
        per_pad, per_cols, pad, cols = found
        matrix = cols[:live.n * per_cols].reshape(live.n * live.ohw[0] * live.ohw[1], -1)
        live_shape = (geo.o, *live.khw, live.cg)

        def part(lo, hi):
            def make():
                g = _geo(x[lo:hi].shape, live_shape, live_attrs)
                win = g.windows(_pad_into(g, x[lo:hi], pad[lo * per_pad:hi * per_pad]))
                np.copyto(cols[lo * per_cols:hi * per_cols].reshape(win.shape), win)
            return make
        filled = 1 in a.get(WORKSPACE_FILLED, ()) and not _small_columns(live, x.dtype.itemsize)
        columns = [] if filled else [part(lo, hi) for lo, hi in sample_cuts]

    def product(o0, o1):
        def run():
            block = _live_block(out[o0:o1], cut)
            dst = block.reshape(o1 - o0, -1)
            if np.shares_memory(dst, block):
                np.matmul(dy2[:, o0:o1].T, matrix, out=dst)
            else:
                block[...] = (dy2[:, o0:o1].T @ matrix).reshape(block.shape)
        return run
    return columns, [product(o0, o1) for o0, o1 in channel_cuts]
