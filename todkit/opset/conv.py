"""2-D convolution in NCHW: Conv2D and its two backward ops, Conv2DBackpropInput and
Conv2DBackpropFilter (the ops MindSpore's gradient of Conv2D emits).

All three go through one im2col: a strided *view* of the padded input with shape
``(N, C, kh, kw, OH, OW)`` (no Python loop over pixels), copied once into the matrix a BLAS
matmul consumes. The input gradient scatters its columns back with one strided add per
kernel position (col2im, kh*kw iterations). ``group > 1`` runs the same code per group.
"""



from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import as_strided

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op

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


def check_format(a):
    if str(a["format"]).upper() != "NCHW":
        raise ValueError(f"format {a['format']!r} is not supported yet (only NCHW)")


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
    check_format(a)
    if len(x_shape) != 4 or len(w_shape) != 4:
        raise ValueError(f"needs 4-D x and w, got {list(x_shape)} and {list(w_shape)}")
    group = int(a["group"])
    o, cg, kh, kw = w_shape
    if x_shape[1] != cg * group:
        raise ValueError(f"x has {x_shape[1]} channels, w expects {cg} x group {group}")
    if o != int(a["out_channel"]) or o % group:
        raise ValueError(f"w has {o} output channels; out_channel is {a['out_channel']}, "
                         f"group {group}")
    if (kh, kw) != pair(a["kernel_size"]):
        raise ValueError(f"w kernel {kh}x{kw} differs from kernel_size {a['kernel_size']}")
    return window_geometry(x_shape[2:], (kh, kw), pair(a["stride"]), pair(a["dilation"]),
                           a["pad_mode"], a["pad_list"])


def resolved_pad_list(x_shape, w_shape, attrs) -> tuple[int, int, int, int]:
    """The ``pad_list`` MindSpore stores after shape inference (for front ends and codecs)."""
    return tuple(conv_geometry(x_shape, w_shape, attrs)[0])


def _pad(x, pads):
    t, b, l, r = pads
    if not (t or b or l or r):
        return x
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)))


def _windows(xp, khw, stride, dilation, ohw):
    """Read-only view (N, C, kh, kw, OH, OW) of every window of the padded input."""
    n, c = xp.shape[:2]
    sn, sc, sh_, sw_ = xp.strides
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = khw, stride, dilation, ohw
    return as_strided(xp, (n, c, kh, kw, oh, ow),
                      (sn, sc, sh_ * dh, sw_ * dw, sh_ * sh, sw_ * sw), writeable=False)


def _groups(a):
    return int(a["group"])


def _conv_forward(x, w, out, a):
    pads, ohw = conv_geometry(x.shape, w.shape, a)
    stride, dilation = pair(a["stride"]), pair(a["dilation"])
    n, g = x.shape[0], _groups(a)
    o, cg, kh, kw = w.shape
    og = o // g
    xp = _pad(x, pads)
    for k in range(g):
        win = _windows(xp[:, k * cg:(k + 1) * cg], (kh, kw), stride, dilation, ohw)
        cols = win.reshape(n, cg * kh * kw, ohw[0] * ohw[1])  # the im2col copy
        w2 = w[k * og:(k + 1) * og].reshape(og, -1)
        dst = out[:, k * og:(k + 1) * og].reshape(n, og, -1)
        # Batched BLAS matmul straight into the output (a view for group 1).
        np.matmul(w2, cols, out=dst)
        if not np.may_share_memory(dst, out):  # reshape had to copy
            out[:, k * og:(k + 1) * og] = dst.reshape(n, og, *ohw)


def _conv_backprop_input(dy, w, out, a):
    x_shape = tuple(out.shape)
    pads, (oh, ow) = conv_geometry(x_shape, w.shape, a)
    (sh, sw), (dh, dw) = pair(a["stride"]), pair(a["dilation"])
    n, g = dy.shape[0], _groups(a)
    o, cg, kh, kw = w.shape
    og = o // g
    t, b, l, r = pads
    dxp = np.zeros((n, x_shape[1], x_shape[2] + t + b, x_shape[3] + l + r), dy.dtype)
    for k in range(g):
        w2 = w[k * og:(k + 1) * og].reshape(og, -1)
        dy3 = dy[:, k * og:(k + 1) * og].reshape(n, og, oh * ow)
        dcols = np.matmul(w2.T, dy3).reshape(n, cg, kh, kw, oh, ow)
        dst = dxp[:, k * cg:(k + 1) * cg]
        for i in range(kh):  # col2im: one strided add per kernel position
            for j in range(kw):
                dst[:, :, i * dh:i * dh + (oh - 1) * sh + 1:sh,
                    j * dw:j * dw + (ow - 1) * sw + 1:sw] += dcols[:, :, i, j]
    out[...] = dxp[:, :, t:t + x_shape[2], l:l + x_shape[3]]


def _conv_backprop_filter(dy, x, out, a):
    pads, ohw = conv_geometry(x.shape, out.shape, a)
    stride, dilation = pair(a["stride"]), pair(a["dilation"])
    g = _groups(a)
    o, cg, kh, kw = out.shape
    og = o // g
    xp = _pad(x, pads)
    for k in range(g):
        win = _windows(xp[:, k * cg:(k + 1) * cg], (kh, kw), stride, dilation, ohw)
        # Columns laid out (C*kh*kw, N*OH*OW) so the whole batch is one BLAS matmul.
        cols = win.transpose(1, 2, 3, 0, 4, 5).reshape(cg * kh * kw, -1)
        dy2 = dy[:, k * og:(k + 1) * og].transpose(1, 0, 2, 3).reshape(og, -1)
        np.matmul(dy2, cols.T, out=out[k * og:(k + 1) * og].reshape(og, -1))


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
        return [TensorType((x.shape[0], w.shape[0], oh, ow), x.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_forward(ins[0], ins[1], outs[0], a)

    def grad(g, node, douts):
        (dy,) = douts
        x, w = node.inputs
        dx = dw = None
        if g.wants(x):  # never for the network's data input
            dx = g.emit("Conv2DBackpropInput", [dy, w],
                        **_conv_attrs(node, input_sizes=x.type.shape))
        if g.wants(w):
            dw = g.emit("Conv2DBackpropFilter", [dy, x],
                        **_conv_attrs(node, filter_sizes=w.type.shape))
        return [dx, dw]


def _check_dy(dy, x_shape, w_shape, a):
    _, (oh, ow) = conv_geometry(x_shape, w_shape, a)
    want = (x_shape[0], w_shape[0], oh, ow)
    if len(dy.shape) != 4 or tuple(dy.shape) != want:
        raise ValueError(f"dy {list(dy.shape)} does not match the convolution's output "
                         f"{list(want)}")


@op
class Conv2DBackpropInput(OpDef):
    """dx of Conv2D from (dy, w); ``input_sizes`` is x's shape."""

    attrs = {**CONV_ATTRS, "input_sizes": REQUIRED}

    def infer(ins, a):
        dy, w = ins
        x_shape = tuple(int(d) for d in a["input_sizes"])
        _check_dy(dy, x_shape, w.shape, a)
        return [TensorType(x_shape, dy.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_backprop_input(ins[0], ins[1], outs[0], a)


@op
class Conv2DBackpropFilter(OpDef):
    """dw of Conv2D from (dy, x); ``filter_sizes`` is w's shape."""

    attrs = {**CONV_ATTRS, "filter_sizes": REQUIRED}

    def infer(ins, a):
        dy, x = ins
        w_shape = tuple(int(d) for d in a["filter_sizes"])
        _check_dy(dy, x.shape, w_shape, a)
        return [TensorType(w_shape, dy.dtype)]

    def kernel(ins, outs, a, rt):
        _conv_backprop_filter(ins[0], ins[1], outs[0], a)
