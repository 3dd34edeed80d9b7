"""Independent NumPy references for the op kernels, written the slow, obvious way (explicit
loops for convolution and pooling, textbook formulas for losses and optimizers) so they
share no code with todkit/opset.

``REFERENCE[op](ins, attrs)`` returns the op's outputs followed by the new values of the
inputs the op mutates, in ``mutates`` order.
"""

from __future__ import annotations

import math

import numpy as np

REFERENCE = {}


def ref(*names):
    def deco(fn):
        for n in names:
            REFERENCE[n] = fn
        return fn
    return deco


def _pair(v):
    v = tuple(v) if isinstance(v, (tuple, list)) else (v, v)
    return v[-2:]


# -- element-wise and layout -----------------------------------------------------------------
ref("Add")(lambda ins, a: [ins[0] + ins[1]])
ref("Sub")(lambda ins, a: [ins[0] - ins[1]])
ref("Mul")(lambda ins, a: [ins[0] * ins[1]])
ref("RealDiv")(lambda ins, a: [ins[0] / ins[1]])
ref("Reshape")(lambda ins, a: [ins[0].reshape(a["shape"])])
ref("Flatten")(lambda ins, a: [ins[0].reshape(len(ins[0]), -1)])
ref("ExpandDims")(lambda ins, a: [np.expand_dims(ins[0], a["axis"])])
ref("Transpose")(lambda ins, a: [np.transpose(ins[0], a["perm"])])
ref("ReLU")(lambda ins, a: [np.where(ins[0] > 0, ins[0], 0).astype(ins[0].dtype)])
ref("ReluGrad")(lambda ins, a: [np.where(ins[1] > 0, ins[0], 0).astype(ins[0].dtype)])
ref("Sigmoid")(lambda ins, a: [(0.5 * (1 + np.tanh(ins[0] / 2))).astype(ins[0].dtype)])
ref("SigmoidGrad")(lambda ins, a: [ins[1] * ins[0] * (1 - ins[0])])
ref("TanhGrad")(lambda ins, a: [ins[1] - ins[1] * ins[0] ** 2])
ref("MatMul")(lambda ins, a: [np.einsum("ij,jk->ik", ins[0].T if a["transpose_a"] else ins[0],
                                        ins[1].T if a["transpose_b"] else ins[1])])


@ref("AddN")
def _addn(ins, a):
    total = np.zeros_like(ins[0])
    for x in ins:
        total = total + x
    return [total]


@ref("Tanh")
def _tanh(ins, a):
    e = np.exp(2 * ins[0].astype(np.float64))
    return [((e - 1) / (e + 1)).astype(ins[0].dtype)]


def _channel_axis(x, fmt):
    return x.ndim - 1 if fmt == "NHWC" or x.ndim == 2 else 1


@ref("BiasAdd")
def _bias_add(ins, a):
    x, b = ins
    axis = _channel_axis(x, a["data_format"])
    out = x.copy()
    for c in range(len(b)):
        idx = [slice(None)] * x.ndim
        idx[axis] = c
        out[tuple(idx)] += b[c]
    return [out]


@ref("BiasAddGrad")
def _bias_add_grad(ins, a):
    (dy,) = ins
    axis = _channel_axis(dy, a["data_format"])
    return [np.moveaxis(dy, axis, 0).reshape(dy.shape[axis], -1).sum(axis=1)]


# -- losses ----------------------------------------------------------------------------------
def _log_softmax_row(row):
    m = max(row)
    s = sum(math.exp(v - m) for v in row)
    return [v - m - math.log(s) for v in row]


@ref("SoftmaxCrossEntropyWithLogits")
def _softmax_ce(ins, a):
    logits, labels = ins
    loss, back = np.zeros(len(logits), logits.dtype), np.zeros_like(logits)
    for i, row in enumerate(logits.astype(float)):
        logp = _log_softmax_row(row)
        loss[i] = -sum(lab * lp for lab, lp in zip(labels[i], logp))
        back[i] = [math.exp(lp) - lab for lp, lab in zip(logp, labels[i])]
    return [loss, back]


@ref("SparseSoftmaxCrossEntropyWithLogits")
def _sparse_softmax_ce(ins, a):
    logits, labels = ins
    n = len(logits)
    if a["is_grad"]:
        grad = np.zeros_like(logits)
        for i, row in enumerate(logits.astype(float)):
            probs = [math.exp(lp) for lp in _log_softmax_row(row)]
            probs[labels[i]] -= 1
            grad[i] = [p / n for p in probs]
        return [grad]
    total = sum(-_log_softmax_row(row)[labels[i]] for i, row in enumerate(logits.astype(float)))
    return [np.array(total / n, logits.dtype)]


# -- convolution and pooling, by explicit loops ---------------------------------------------
def _pads(a, h, w, kh, kw):
    """(top, bottom, left, right) as MindSpore resolves them."""
    mode = a["pad_mode"].lower()
    if mode == "pad":
        return tuple(a["pad_list"])
    if mode == "valid":
        return (0, 0, 0, 0)
    (sh, sw), (dh, dw) = _pair(a.get("stride", a.get("strides"))), _pair(a.get("dilation", 1))
    th = max((math.ceil(h / sh) - 1) * sh + (kh - 1) * dh + 1 - h, 0)
    tw = max((math.ceil(w / sw) - 1) * sw + (kw - 1) * dw + 1 - w, 0)
    return (th // 2, th - th // 2, tw // 2, tw - tw // 2)


def _conv_setup(x_shape, w_shape, a):
    h, w = x_shape[2:]
    o, cg, kh, kw = w_shape
    (sh, sw), (dh, dw) = _pair(a["stride"]), _pair(a["dilation"])
    t, b, l, r = _pads(a, h, w, kh, kw)
    oh = (h + t + b - (kh - 1) * dh - 1) // sh + 1
    ow = (w + l + r - (kw - 1) * dw - 1) // sw + 1
    return {"sh": sh, "sw": sw, "dh": dh, "dw": dw, "pads": (t, b, l, r), "oh": oh, "ow": ow,
            "og": o // a["group"], "cg": cg}


def _padded(x, pads, value=0.0):
    t, b, l, r = pads
    return np.pad(x, ((0, 0), (0, 0), (t, b), (l, r)), constant_values=value)


@ref("Conv2D")
def _conv2d(ins, a):
    x, w = ins
    s = _conv_setup(x.shape, w.shape, a)
    xp = _padded(x, s["pads"])
    kh, kw = w.shape[2:]
    y = np.zeros((x.shape[0], w.shape[0], s["oh"], s["ow"]), x.dtype)
    for o in range(w.shape[0]):
        c0 = (o // s["og"]) * s["cg"]
        for i in range(s["oh"]):
            for j in range(s["ow"]):
                r0, q0 = i * s["sh"], j * s["sw"]
                patch = xp[:, c0:c0 + s["cg"], r0:r0 + (kh - 1) * s["dh"] + 1:s["dh"],
                           q0:q0 + (kw - 1) * s["dw"] + 1:s["dw"]]
                y[:, o, i, j] = (patch * w[o]).sum(axis=(1, 2, 3))
    return [y]


@ref("Conv2DBackpropInput")
def _conv2d_backprop_input(ins, a):
    dy, w = ins
    x_shape = tuple(a["input_sizes"])
    s = _conv_setup(x_shape, w.shape, a)
    t, b, l, r = s["pads"]
    kh, kw = w.shape[2:]
    dxp = np.zeros((x_shape[0], x_shape[1], x_shape[2] + t + b, x_shape[3] + l + r), dy.dtype)
    for o in range(w.shape[0]):
        c0 = (o // s["og"]) * s["cg"]
        for i in range(s["oh"]):
            for j in range(s["ow"]):
                r0, q0 = i * s["sh"], j * s["sw"]
                dxp[:, c0:c0 + s["cg"], r0:r0 + (kh - 1) * s["dh"] + 1:s["dh"],
                    q0:q0 + (kw - 1) * s["dw"] + 1:s["dw"]] += (
                        dy[:, o, i, j][:, None, None, None] * w[o][None])
    return [dxp[:, :, t:t + x_shape[2], l:l + x_shape[3]]]


@ref("Conv2DBackpropFilter")
def _conv2d_backprop_filter(ins, a):
    dy, x = ins
    w_shape = tuple(a["filter_sizes"])
    s = _conv_setup(x.shape, w_shape, a)
    xp = _padded(x, s["pads"])
    kh, kw = w_shape[2:]
    dw = np.zeros(w_shape, x.dtype)
    for o in range(w_shape[0]):
        c0 = (o // s["og"]) * s["cg"]
        for i in range(s["oh"]):
            for j in range(s["ow"]):
                r0, q0 = i * s["sh"], j * s["sw"]
                patch = xp[:, c0:c0 + s["cg"], r0:r0 + (kh - 1) * s["dh"] + 1:s["dh"],
                           q0:q0 + (kw - 1) * s["dw"] + 1:s["dw"]]
                dw[o] += (patch * dy[:, o, i, j][:, None, None, None]).sum(axis=0)
    return [dw]


def _pool_setup(x, a):
    kh, kw = _pair(a["kernel_size"])
    sh, sw = _pair(a["strides"])
    pads = _pads(dict(a, stride=(sh, sw)), x.shape[2], x.shape[3], kh, kw)
    oh = (x.shape[2] + pads[0] + pads[1] - kh) // sh + 1
    ow = (x.shape[3] + pads[2] + pads[3] - kw) // sw + 1
    return kh, kw, sh, sw, pads, oh, ow


@ref("MaxPool")
def _max_pool(ins, a):
    (x,) = ins
    kh, kw, sh, sw, pads, oh, ow = _pool_setup(x, a)
    xp = _padded(x, pads, -np.inf)
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            y[:, :, i, j] = xp[:, :, i * sh:i * sh + kh, j * sw:j * sw + kw].max(axis=(2, 3))
    return [y]


@ref("MaxPoolGrad")
def _max_pool_grad(ins, a):
    x, _, dy = ins
    kh, kw, sh, sw, pads, oh, ow = _pool_setup(x, a)
    xp = _padded(x, pads, -np.inf)
    dxp = np.zeros(xp.shape, x.dtype)
    for n in range(x.shape[0]):
        for c in range(x.shape[1]):
            for i in range(oh):
                for j in range(ow):
                    win = xp[n, c, i * sh:i * sh + kh, j * sw:j * sw + kw]
                    r, q = np.unravel_index(np.argmax(win), win.shape)  # first maximum
                    dxp[n, c, i * sh + r, j * sw + q] += dy[n, c, i, j]
    t, _, l, _ = pads
    return [dxp[:, :, t:t + x.shape[2], l:l + x.shape[3]]]


# -- batch normalisation: per-channel loops in float64 ------------------------------------------
def _bn_channels(x, fmt):
    """x as a list of per-channel float64 sample vectors."""
    if x.ndim == 2:
        return [x[:, c].astype(float) for c in range(x.shape[1])]
    axis = 3 if fmt == "NHWC" else 1
    return [np.take(x, c, axis=axis).astype(float).ravel() for c in range(x.shape[axis])]


def _bn_assemble(x, fmt, per_channel):
    out = np.empty(x.shape, float)
    axis = 1 if x.ndim == 2 else (3 if fmt == "NHWC" else 1)
    for c, vals in enumerate(per_channel):
        idx = [slice(None)] * x.ndim
        idx[axis] = c
        out[tuple(idx)] = vals.reshape(out[tuple(idx)].shape)
    return out.astype(x.dtype)


@ref("BatchNorm")
def _batch_norm(ins, a):
    x, gamma, beta, mmean, mvar = ins
    fmt, eps, mom = a["data_format"], a["epsilon"], a["momentum"]
    chans = _bn_channels(x, fmt)
    if a["is_training"]:
        mean = np.array([v.sum() / len(v) for v in chans])
        var = np.array([((v - v.sum() / len(v)) ** 2).sum() / len(v) for v in chans])
        new_mean = (1 - mom) * mmean.astype(float) + mom * mean
        m = len(chans[0])
        new_var = (1 - mom) * mvar.astype(float) + mom * var * m / (m - 1)  # unbiased
    else:
        mean, var = mmean.astype(float), mvar.astype(float)
        new_mean, new_var = mean, var
    ys = [(v - mean[c]) / math.sqrt(var[c] + eps) * gamma[c] + beta[c]
          for c, v in enumerate(chans)]
    dt = x.dtype
    stats = [mean.astype(dt), var.astype(dt)]
    return [_bn_assemble(x, fmt, ys), *stats, *stats, new_mean.astype(dt), new_var.astype(dt)]


@ref("BatchNormGrad")
def _batch_norm_grad(ins, a):
    dy, x, gamma, mean, var, _ = ins
    fmt, eps = a["data_format"], a["epsilon"]
    dys, xs = _bn_channels(dy, fmt), _bn_channels(x, fmt)
    dxs, dgamma, dbeta = [], [], []
    for c, (d, v) in enumerate(zip(dys, xs)):
        s = 1 / math.sqrt(var[c] + eps)
        xhat = (v - mean[c]) * s
        db, dg = d.sum(), (d * xhat).sum()
        if a["is_training"]:
            m = len(v)
            dxs.append(gamma[c] * s * (d - db / m - xhat * dg / m))
        else:
            dxs.append(gamma[c] * s * d)
        dgamma.append(dg)
        dbeta.append(db)
    dt = x.dtype
    return [_bn_assemble(x, fmt, dxs), np.array(dgamma, dt), np.array(dbeta, dt)]


# -- reductions ------------------------------------------------------------------------------
def _axes(x, a):
    axis = tuple(a["axis"])
    return tuple(range(x.ndim)) if not axis else tuple(v % x.ndim for v in axis)


@ref("ReduceSum")
def _reduce_sum(ins, a):
    x = ins[0]
    if a["skip_mode"] and not tuple(a["axis"]):
        return [x.copy()]
    return [np.add.reduce(x.astype(float), axis=_axes(x, a), keepdims=a["keep_dims"])
            .astype(x.dtype)]


@ref("ReduceMean")
def _reduce_mean(ins, a):
    x = ins[0]
    axes = _axes(x, a)
    count = int(np.prod([x.shape[i] for i in axes]))
    return [(np.add.reduce(x.astype(float), axis=axes, keepdims=a["keep_dims"]) / count)
            .astype(x.dtype)]


ref("Tile")(lambda ins, a: [np.tile(ins[0], a["multiples"])])
ref("Neg")(lambda ins, a: [-ins[0]])


# -- more activations, element-wise math, softmax -------------------------------------------
def _pw(fn):
    """An element-wise reference computed one Python float at a time."""
    def run(x):
        return np.array([fn(float(v)) for v in x.ravel()]).reshape(x.shape).astype(x.dtype)
    return run


ref("ReLU6")(lambda ins, a: [_pw(lambda v: min(max(v, 0.0), 6.0))(ins[0])])
ref("ReLU6Grad")(lambda ins, a: [ins[0] * _pw(lambda v: float(0 < v < 6))(ins[1])])
ref("HSigmoid")(lambda ins, a: [_pw(lambda v: min(max(v + 3, 0.0), 6.0) / 6)(ins[0])])
ref("HSigmoidGrad")(lambda ins, a: [ins[0] * _pw(lambda v: float(-3 < v < 3) / 6)(ins[1])])
ref("HSwish")(lambda ins, a: [_pw(lambda v: v * min(max(v + 3, 0.0), 6.0) / 6)(ins[0])])
ref("HSwishGrad")(lambda ins, a: [ins[0] * _pw(
    lambda v: 0.0 if v <= -3 else 1.0 if v >= 3 else (2 * v + 3) / 6)(ins[1])])
ref("Sqrt")(lambda ins, a: [_pw(math.sqrt)(ins[0])])
ref("SqrtGrad")(lambda ins, a: [ins[1] * 0.5 / ins[0]])
ref("Exp")(lambda ins, a: [_pw(math.exp)(ins[0])])
ref("Log")(lambda ins, a: [_pw(math.log)(ins[0])])
ref("Maximum")(lambda ins, a: [np.where(ins[0] >= ins[1], ins[0], ins[1])])
ref("Minimum")(lambda ins, a: [np.where(ins[0] <= ins[1], ins[0], ins[1])])
ref("MaximumGrad")(lambda ins, a: [np.where(ins[0] >= ins[1], ins[2], 0),
                                   np.where(ins[0] >= ins[1], 0, ins[2])])
ref("MinimumGrad")(lambda ins, a: [np.where(ins[0] <= ins[1], ins[2], 0),
                                   np.where(ins[0] <= ins[1], 0, ins[2])])
ref("Squeeze")(lambda ins, a: [np.squeeze(ins[0], axis=tuple(a["axis"]) or None)])


def _softmax_along(x, axis, log):
    moved = np.moveaxis(x.astype(float), axis, -1)
    out = np.empty(moved.shape)
    for idx in np.ndindex(moved.shape[:-1]):
        lp = _log_softmax_row(list(moved[idx]))
        out[idx] = lp if log else [math.exp(v) for v in lp]
    return np.moveaxis(out, -1, axis).astype(x.dtype)


ref("Softmax")(lambda ins, a: [_softmax_along(ins[0], a["axis"][0], log=False)])
ref("LogSoftmax")(lambda ins, a: [_softmax_along(ins[0], a["axis"], log=True)])


@ref("Dropout")
def _dropout(ins, a):
    x, keep = ins[0], a["keep_prob"]
    if keep >= 1.0:
        return [x.copy(), np.ones_like(x)]
    mask = (np.random.default_rng(0).random(x.shape) < keep).astype(x.dtype)
    return [x * mask / keep, mask]


ref("DropoutGrad")(lambda ins, a: [ins[0] * ins[1] / a["keep_prob"]])


@ref("AvgPool")
def _avg_pool(ins, a):
    (x,) = ins
    kh, kw, sh, sw, pads, oh, ow = _pool_setup(x, a)
    t, _, l, _ = pads
    y = np.zeros(x.shape[:2] + (oh, ow), x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = max(i * sh - t, 0), max(j * sw - l, 0)
            r1, c1 = min(i * sh - t + kh, x.shape[2]), min(j * sw - l + kw, x.shape[3])
            y[:, :, i, j] = x[:, :, r0:r1, c0:c1].mean(axis=(2, 3))
    return [y]


@ref("AvgPoolGrad")
def _avg_pool_grad(ins, a):
    x, _, dy = ins
    kh, kw, sh, sw, pads, oh, ow = _pool_setup(x, a)
    t, _, l, _ = pads
    dx = np.zeros(x.shape, x.dtype)
    for i in range(oh):
        for j in range(ow):
            r0, c0 = max(i * sh - t, 0), max(j * sw - l, 0)
            r1, c1 = min(i * sh - t + kh, x.shape[2]), min(j * sw - l + kw, x.shape[3])
            dx[:, :, r0:r1, c0:c1] += dy[:, :, i, j][:, :, None, None] / ((r1 - r0) * (c1 - c0))
    return [dx]


@ref("SigmoidCrossEntropyWithLogits")
def _sigmoid_ce(ins, a):
    """-y log p - (1 - y) log(1 - p), p = sigmoid(v), with log p and log(1 - p) = log p - v
    written so neither overflows."""
    x, lab = ins

    def one(v, y):
        log_p = -math.log1p(math.exp(-v)) if v >= 0 else v - math.log1p(math.exp(v))
        return -y * log_p - (1 - y) * (log_p - v)
    return [np.array([one(float(v), float(y)) for v, y in zip(x.ravel(), lab.ravel())])
            .reshape(x.shape).astype(x.dtype)]


ref("SigmoidCrossEntropyWithLogitsGrad")(lambda ins, a: [
    (0.5 * (1 + np.tanh(ins[0] / 2)) - ins[1]) * ins[2]])


# -- join, cast, encodings, powers, GeLU ------------------------------------------------------
@ref("Concat")
def _concat(ins, a):
    axis = a["axis"] % ins[0].ndim
    rows = [np.moveaxis(t, axis, 0) for t in ins]
    stacked = np.array([r for t in rows for r in t])  # one slab per index along the axis
    return [np.moveaxis(stacked, 0, axis)]


@ref("SplitWithSize")
def _split_with_size(ins, a):
    x, dim = ins[0], a["dim"]
    edges = np.cumsum((0,) + tuple(a["split_size"]))
    return [np.moveaxis(np.moveaxis(x, dim, 0)[edges[k]:edges[k + 1]], 0, dim)
            for k in range(len(a["split_size"]))]


@ref("Pad")
def _pad(ins, a):
    x, flat = ins[0], list(a["paddings"])
    out = np.zeros([d + flat[2 * i] + flat[2 * i + 1] for i, d in enumerate(x.shape)], x.dtype)
    for pos in np.ndindex(x.shape):
        out[tuple(p + flat[2 * i] for i, p in enumerate(pos))] = x[pos]
    return [out]


@ref("Slice")
def _slice(ins, a):
    x = ins[0]
    ends = [d if s == -1 else b + s for d, b, s in zip(x.shape, a["begin"], a["size"])]
    out = np.zeros([e - b for b, e in zip(a["begin"], ends)], x.dtype)
    for pos in np.ndindex(out.shape):
        out[pos] = x[tuple(p + b for p, b in zip(pos, a["begin"]))]
    return [out]


@ref("Gather")
def _gather(ins, a):
    params, idx = ins
    axis = a["axis"] % params.ndim
    out = np.zeros(params.shape[:axis] + idx.shape + params.shape[axis + 1:], params.dtype)
    for pos in np.ndindex(out.shape):
        k = pos[axis:axis + idx.ndim]
        src = pos[:axis] + (int(idx[k]),) + pos[axis + idx.ndim:]
        out[pos] = params[src]
    return [out]


_TYPE_IDS = {34: np.int32, 42: np.float16, 43: np.float32, 44: np.float64}
ref("Cast")(lambda ins, a: [np.array([math.trunc(float(v)) if a["to"] == 34
                                      else float(v) for v in ins[0].ravel()], _TYPE_IDS[a["to"]])
                            .reshape(ins[0].shape)])


@ref("OneHot")
def _one_hot(ins, a):
    idx, on, off = ins
    depth, axis = a["depth"], a["axis"]
    out = np.full(idx.shape + (depth,), off.item(), on.dtype)
    for pos in np.ndindex(idx.shape):
        if 0 <= idx[pos] < depth:
            out[pos + (idx[pos],)] = on.item()
    return [out if axis == -1 else np.moveaxis(out, -1, axis)]


ref("Square")(lambda ins, a: [_pw(lambda v: v * v)(ins[0])])
ref("Abs")(lambda ins, a: [_pw(abs)(ins[0])])
ref("AbsGrad")(lambda ins, a: [ins[1] * _pw(lambda v: (v > 0) - (v < 0))(ins[0])])
ref("Pow")(lambda ins, a: [np.vectorize(math.pow)(ins[0], ins[1]).astype(ins[0].dtype)])


def _gelu_slope(v):
    k = math.sqrt(2 / math.pi)
    t = math.tanh(k * (v + 0.044715 * v ** 3))
    return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * k * (1 + 3 * 0.044715 * v * v)


ref("GeLU")(lambda ins, a: [_pw(lambda v: 0.5 * v * (1 + math.tanh(
    math.sqrt(2 / math.pi) * (v + 0.044715 * v ** 3))))(ins[0])])
ref("GeLUGrad")(lambda ins, a: [ins[0] * _pw(_gelu_slope)(ins[1])])


# -- losses with a reduction: one element at a time, then reduced ---------------------------
def _reduce_as(values, a, like):
    values = np.asarray(values, float).reshape(like.shape)
    if a["reduction"] == "none":
        return values.astype(like.dtype)
    total = math.fsum(values.ravel())
    return np.array(total / values.size if a["reduction"] == "mean" else total, like.dtype)


def _spread_ref(dout, a, n):
    if a["reduction"] == "none":
        return dout.astype(float).ravel()
    return np.full(n, float(dout) / (n if a["reduction"] == "mean" else 1))


@ref("SmoothL1Loss")
def _smooth_l1(ins, a):
    b = a["beta"]
    vals = [0.5 * (p - q) ** 2 / b if abs(p - q) < b else abs(p - q) - 0.5 * b
            for p, q in zip(ins[0].ravel().tolist(), ins[1].ravel().tolist())]
    return [_reduce_as(vals, a, ins[0])]


@ref("SmoothL1LossGrad")
def _smooth_l1_grad(ins, a):
    x, y, dout = ins
    d = _spread_ref(dout, a, x.size)
    vals = [min(max((p - q) / a["beta"], -1.0), 1.0) * s
            for p, q, s in zip(x.ravel().tolist(), y.ravel().tolist(), d)]
    return [np.array(vals).reshape(x.shape).astype(x.dtype)]


@ref("BinaryCrossEntropy")
def _bce(ins, a):
    def one(p, t, w):
        return -w * (t * math.log(max(p, 1e-12)) + (1 - t) * math.log(max(1 - p, 1e-12)))
    vals = [one(*v) for v in zip(*(t.ravel().tolist() for t in ins))]
    return [_reduce_as(vals, a, ins[0])]


@ref("BinaryCrossEntropyGrad")
def _bce_grad(ins, a):
    x, y, dout, w = ins
    d = _spread_ref(dout, a, x.size)
    vals = [wi * (p - t) / max(p * (1 - p), 1e-12) * s for p, t, wi, s in
            zip(x.ravel().tolist(), y.ravel().tolist(), w.ravel().tolist(), d)]
    return [np.array(vals).reshape(x.shape).astype(x.dtype)]


@ref("NLLLoss")
def _nll(ins, a):
    logits, labels, w = ins
    losses, total = [], 0.0
    for i, t in enumerate(labels.tolist()):
        if t == a["ignore_index"]:
            losses.append(0.0)
            continue
        losses.append(-float(w[t]) * float(logits[i, t]))
        total += float(w[t])
    dt = logits.dtype
    if a["reduction"] == "none":
        loss = np.array(losses, dt)
    else:
        s = math.fsum(losses)
        loss = np.array(s / total if a["reduction"] == "mean" else s, dt)
    return [loss, np.array(total, dt)]


@ref("NLLLossGrad")
def _nll_grad(ins, a):
    logits, dout, labels, w, total = ins
    out = np.zeros_like(logits)
    for i, t in enumerate(labels.tolist()):
        if t == a["ignore_index"]:
            continue
        if a["reduction"] == "none":
            scale = float(dout[i])
        else:
            scale = float(dout) / (float(total) if a["reduction"] == "mean" else 1)
        out[i, t] = -float(w[t]) * scale
    return [out]


# -- NHWC: the same loops on NCHW copies (KHWC weights <-> OIHW) ------------------------------
def _nchw(t):
    return np.ascontiguousarray(np.transpose(t, (0, 3, 1, 2)))


def _nhwc(t):
    return np.ascontiguousarray(np.transpose(t, (0, 2, 3, 1)))


def _nhwc_variant(nchw_ref, to_nchw_inputs):
    """Reference for format NHWC: convert the listed inputs (all are 4-D) to NCHW, run the
    NCHW loops, convert the outputs back."""
    def run(ins, a):
        if a.get("format", "NCHW") != "NHWC":
            return nchw_ref(ins, a)
        ins = [_nchw(t) if k in to_nchw_inputs else t for k, t in enumerate(ins)]
        return [_nhwc(o) for o in nchw_ref(ins, dict(a, format="NCHW"))]
    return run


for _name, _which in [("Conv2D", (0, 1)), ("Conv2DBackpropInput", (0, 1)),
                      ("Conv2DBackpropFilter", (0, 1)), ("MaxPool", (0,)),
                      ("MaxPoolGrad", (0, 1, 2)), ("AvgPool", (0,)), ("AvgPoolGrad", (0, 1, 2))]:
    REFERENCE[_name] = _nhwc_variant(REFERENCE[_name], _which)


# -- optimizers and assignment, textbook formulas in float64 --------------------------------
_DUMMY = np.zeros(1, np.float32)


@ref("Adam")
def _adam(ins, a):
    p, m, v, b1p, b2p, lr, b1, b2, eps, g = (np.asarray(t, np.float64) for t in ins)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    lr_t = lr * np.sqrt(1 - b2p) / (1 - b1p)
    num = (b1 * m + (1 - b1) * g) if a["use_nesterov"] else m
    p = p - lr_t * num / (np.sqrt(v) + eps)
    dt = ins[0].dtype
    return [_DUMMY, p.astype(dt), m.astype(dt), v.astype(dt)]


@ref("ApplyMomentum")
def _apply_momentum(ins, a):
    p, accum, lr, g, mom = (np.asarray(t, np.float64) for t in ins)
    accum = mom * accum + g
    p = p - (lr * (g + mom * accum) if a["use_nesterov"] else lr * accum)
    dt = ins[0].dtype
    return [_DUMMY, p.astype(dt), accum.astype(dt)]


@ref("SGD")
def _sgd(ins, a):
    p, g, lr, accum, mom, stat = (np.asarray(t, np.float64) for t in ins)
    g = g + a["weight_decay"] * p
    if mom > 0:
        accum = np.where(stat > 0, g, mom * accum + (1 - a["dampening"]) * g)
        stat = np.zeros_like(stat)
        step = g + mom * accum if a["nesterov"] else accum
    else:
        step = g
    p = p - lr * step
    dt = ins[0].dtype
    return [_DUMMY, p.astype(dt), accum.astype(dt), stat.astype(dt)]


@ref("AdamWeightDecay")
def _adam_weight_decay(ins, a):
    p, m, v, lr, b1, b2, eps, decay, g = (np.asarray(t, np.float64) for t in ins)
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g * g
    p = p - lr * (m / (np.sqrt(v) + eps) + decay * p)
    dt = ins[0].dtype
    return [_DUMMY, p.astype(dt), m.astype(dt), v.astype(dt)]


@ref("Assign")
def _assign(ins, a):
    new = np.broadcast_to(ins[1], ins[0].shape).copy()
    return [new, new]


@ref("AssignAdd")
def _assign_add(ins, a):
    new = ins[0] + ins[1]
    return [new, new]


# -- MindSpore 2.10's gradient forms: comparisons, Select, FillV2, Sign, ELU -----------------
ref("Less")(lambda ins, a: [np.array(ins[0] < ins[1])])
ref("Greater")(lambda ins, a: [np.array(ins[0] > ins[1])])
ref("Equal")(lambda ins, a: [np.array(ins[0] == ins[1])])
ref("Select")(lambda ins, a: [np.where(ins[0], ins[1], ins[2]).astype(ins[1].dtype)])
ref("FillV2")(lambda ins, a: [np.full(a["shape"], ins[0].reshape(()), ins[0].dtype)])
ref("Sign")(lambda ins, a: [_pw(lambda v: (v > 0) - (v < 0))(ins[0])])
ref("Elu")(lambda ins, a: [_pw(lambda v: v if v > 0 else a["alpha"] * math.expm1(v))(ins[0])])
ref("EluGrad")(lambda ins, a: [ins[0] * _pw(lambda v: 1.0 if v > 0 else v + a["alpha"])(ins[1])])
ref("GreaterEqual")(lambda ins, a: [np.array(ins[0] >= ins[1])])
ref("LessEqual")(lambda ins, a: [np.array(ins[0] <= ins[1])])
ref("NotEqual")(lambda ins, a: [np.array(ins[0] != ins[1])])
ref("LogicalAnd")(lambda ins, a: [np.array(ins[0] & ins[1])])
ref("LogicalOr")(lambda ins, a: [np.array(ins[0] | ins[1])])
ref("LogicalNot")(lambda ins, a: [np.array(~ins[0])])
# -- layer normalisation (MindSpore's CPU kernels, one row and one parameter at a time) -------
def _ln_layout(x, a):
    b, p = a["begin_norm_axis"] % x.ndim, a["begin_params_axis"] % x.ndim
    rows, inner = math.prod(x.shape[:b]), math.prod(x.shape[b:])
    return b, rows, inner, math.prod(x.shape[p:])


@ref("LayerNorm")
def _layer_norm(ins, a):
    x, gamma, beta = ins
    b, rows, inner, psize = _ln_layout(x, a)
    xf, gf, bf = x.ravel().astype(float), gamma.ravel(), beta.ravel()
    y, means, variances = np.empty(x.size), [], []
    for r in range(rows):
        v = xf[r * inner:(r + 1) * inner]
        m = sum(v) / inner
        var = sum((t - m) ** 2 for t in v) / inner
        for j in range(inner):
            k = r * inner + j
            y[k] = (v[j] - m) / math.sqrt(var + a["epsilon"]) * gf[k % psize] + bf[k % psize]
        means.append(m)
        variances.append(var)
    stat = x.shape[:b] + (1,) * (x.ndim - b)
    dt = x.dtype
    return [y.reshape(x.shape).astype(dt), np.array(means, dt).reshape(stat),
            np.array(variances, dt).reshape(stat)]


@ref("LayerNormGrad")
def _layer_norm_grad(ins, a):
    # The sums of MindSpore's LayerNormGradCpuKernelMod, written out per row.
    x, dy, var, mean, gamma = (np.asarray(t, float).ravel() for t in ins)
    _, rows, inner, psize = _ln_layout(ins[0], a)
    eps = a["epsilon"]
    dx, dg, db = np.empty(x.size), np.zeros(psize), np.zeros(psize)
    for k in range(x.size):
        r = k // inner
        dg[k % psize] += dy[k] * (var[r] + eps) ** -0.5 * (x[k] - mean[r])
        db[k % psize] += dy[k]
    for r in range(rows):
        ks = range(r * inner, (r + 1) * inner)
        s1 = sum(-0.5 * dy[k] * gamma[k % psize] * (x[k] - mean[r]) * (var[r] + eps) ** -1.5
                 for k in ks)
        s2 = sum(dy[k] * gamma[k % psize] for k in ks)
        s3 = sum(-2.0 * (x[k] - mean[r]) for k in ks)
        rs = (var[r] + eps) ** -0.5
        for k in ks:
            dx[k] = (dy[k] * gamma[k % psize] * rs + s1 * 2.0 / inner * (x[k] - mean[r])
                     + (-rs * s2 + s1 * s3 / inner) / inner)
    dt = ins[0].dtype
    shape = ins[4].shape
    return [dx.reshape(ins[0].shape).astype(dt), dg.reshape(shape).astype(dt),
            db.reshape(shape).astype(dt)]


@ref("GatherD")
def _gather_d(ins, a):
    x, index = ins
    d = a["dim"] % x.ndim
    sub = x[tuple(slice(0, e) if k != d else slice(None) for k, e in enumerate(index.shape))]
    return [np.take_along_axis(sub, index.astype(np.intp), axis=d)]


ref("ReduceMax")(lambda ins, a: [np.max(ins[0], axis=tuple(a["axis"]) or None,
                                        keepdims=bool(a["keep_dims"]))])


# -- nn.SiLU and nn.Embedding's gradient (todkit/opset/extra_layers.py) ----------------------
ref("SiLU")(lambda ins, a: [_pw(lambda v: v / (1.0 + math.exp(-v)) if v > -700 else 0.0)(ins[0])])


@ref("UnsortedSegmentSum")
def _unsorted_segment_sum(ins, a):
    x, ids = ins
    n = int(a["num_segments"])
    out = np.zeros((n,) + x.shape[ids.ndim:], x.dtype)
    for pos in np.ndindex(ids.shape):
        i = int(ids[pos])
        if 0 <= i < n:  # ids outside [0, n) are skipped
            out[i] = out[i] + x[pos]
    return [out]


# -- strided slicing and batched products -----------------------------------------------------
def _strided_positions(shape, a):
    """Per axis: the positions taken (TensorFlow's canonical begin / end, walked by hand)
    and whether the axis is kept, from begin / end / strides and the masks."""
    axes = []
    for i, dim in enumerate(shape):
        if i >= len(a["begin"]):
            axes.append((list(range(dim)), True))
            continue
        b, e, s = a["begin"][i], a["end"][i], a["strides"][i]
        if a["shrink_axis_mask"] >> i & 1:
            axes.append(([b + dim if b < 0 else b], False))
            continue
        if a["begin_mask"] >> i & 1:
            b = 0 if s > 0 else dim - 1
        else:
            b = b + dim if b < 0 else b
            b = min(max(b, 0), dim) if s > 0 else min(max(b, -1), dim - 1)
        if a["end_mask"] >> i & 1:
            e = dim if s > 0 else -1
        else:
            e = e + dim if e < 0 else e
            e = min(max(e, 0), dim) if s > 0 else min(max(e, -1), dim - 1)
        taken, k = [], b
        while (k < e) if s > 0 else (k > e):
            taken.append(k)
            k += s
        axes.append((taken, True))
    return axes


@ref("StridedSlice")
def _strided_slice(ins, a):
    x = ins[0]
    axes = _strided_positions(x.shape, a)
    out = x[np.ix_(*[p for p, _ in axes])]
    return [out.reshape([len(p) for p, keep in axes if keep]).copy()]


@ref("StridedSliceGrad")
def _strided_slice_grad(ins, a):
    dout = ins[0]
    axes = _strided_positions(tuple(a["shapex"]), a)
    out = np.zeros(a["shapex"], dout.dtype)
    full = dout.reshape([len(p) for p, _ in axes])
    for src in np.ndindex(*full.shape):
        out[tuple(axes[i][0][j] for i, j in enumerate(src))] = full[src]
    return [out]


@ref("BatchMatMul")
def _batch_matmul(ins, a):
    x, w = ins
    x = np.swapaxes(x, -1, -2) if a["transpose_a"] else x
    w = np.swapaxes(w, -1, -2) if a["transpose_b"] else w
    batch = np.broadcast_shapes(x.shape[:-2], w.shape[:-2])
    xb = np.broadcast_to(x, batch + x.shape[-2:]).reshape(-1, *x.shape[-2:])
    wb = np.broadcast_to(w, batch + w.shape[-2:]).reshape(-1, *w.shape[-2:])
    out = np.array([np.einsum("ij,jk->ik", p, q) for p, q in zip(xb, wb)])
    return [out.reshape(batch + (x.shape[-2], w.shape[-1]))]


def _gn_blocks(x, groups):
    """(N, G, elements per block, per-channel size) of a GroupNorm input."""
    n, c = x.shape[:2]
    per_channel = math.prod(x.shape[2:])
    return n, groups, (c // groups) * per_channel, per_channel


@ref("GroupNorm")
def _group_norm(ins, a):
    x, gamma, beta = ins
    n, g, m, s = _gn_blocks(x, a["num_groups"])
    xf = x.astype(float).reshape(n, g, m)
    y = np.empty((n, g, m))
    means, rstds = np.empty((n, g)), np.empty((n, g))
    for i in range(n):
        for j in range(g):
            block = list(xf[i, j])
            mu = sum(block) / m
            var = sum((t - mu) ** 2 for t in block) / m
            rs = 1.0 / math.sqrt(var + a["epsilon"])
            for k, t in enumerate(block):
                ch = j * (m // s) + k // s  # channel of element k of group j
                y[i, j, k] = (t - mu) * rs * gamma[ch] + beta[ch]
            means[i, j], rstds[i, j] = mu, rs
    dt = x.dtype
    return [y.reshape(x.shape).astype(dt), means.astype(dt), rstds.astype(dt)]


@ref("GroupNormGrad")
def _group_norm_grad(ins, a):
    # The per-group sums of the usual closed form: with ds = sum(dy gamma x) and db = sum(dy
    # gamma) over the group, dx = rstd gamma dy + c2 x + c3, c2 = (db mean - ds) rstd^3 / M,
    # c3 = -c2 mean - db rstd / M.
    dy, x, mean, rstd, gamma = (np.asarray(t, float) for t in ins)
    n, g, m, s = _gn_blocks(ins[1], a["num_groups"])
    c = x.shape[1]
    dyf, xf = dy.reshape(n, c, s), x.reshape(n, c, s)
    mean, rstd = mean.reshape(n, g), rstd.reshape(n, g)
    per = c // g
    dx = np.empty((n, c, s))
    dgamma, dbeta = np.zeros(c), np.zeros(c)
    for i in range(n):
        for j in range(g):
            chans = range(j * per, (j + 1) * per)
            ds = sum(dyf[i, ch, k] * gamma[ch] * xf[i, ch, k] for ch in chans for k in range(s))
            db = sum(dyf[i, ch, k] * gamma[ch] for ch in chans for k in range(s))
            mu, rs = mean[i, j], rstd[i, j]
            c2 = (db * mu - ds) * rs ** 3 / m
            c3 = -c2 * mu - db * rs / m
            for ch in chans:
                for k in range(s):
                    dx[i, ch, k] = rs * gamma[ch] * dyf[i, ch, k] + c2 * xf[i, ch, k] + c3
                    dgamma[ch] += dyf[i, ch, k] * (xf[i, ch, k] - mu) * rs
                    dbeta[ch] += dyf[i, ch, k]
    dt = ins[1].dtype
    return [dx.reshape(x.shape).astype(dt), dgamma.astype(dt), dbeta.astype(dt)]
# -- nn.PReLU, nn.Mish (Softplus) and nn.Dropout2d (todkit/opset/more_activations.py) --------
ref("Softplus")(lambda ins, a: [_pw(
    lambda v: v + math.log1p(math.exp(-v)) if v > 0 else math.log1p(math.exp(v)))(ins[0])])


def _prelu_channel(idx, w, a):
    """The slope index of element ``idx``: 0 for a shared slope, else its channel."""
    if w.size == 1:
        return 0
    return idx[-1] if a["data_format"] == "NHWC" else idx[1]


@ref("PReLU")
def _prelu(ins, a):
    x, w = ins
    out = np.empty_like(x)
    for idx in np.ndindex(x.shape):
        v = float(x[idx])
        out[idx] = v if v > 0 else float(w[_prelu_channel(idx, w, a)]) * v
    return [out]


@ref("PReLUGrad")
def _prelu_grad(ins, a):
    dy, x, w = ins
    dx = np.empty_like(x)
    dw = [0.0] * w.size
    for idx in np.ndindex(x.shape):
        c = _prelu_channel(idx, w, a)
        if x[idx] > 0:
            dx[idx] = dy[idx]
        else:
            dx[idx] = float(w[c]) * float(dy[idx])
            dw[c] += float(dy[idx]) * float(x[idx])
    return [dx, np.array(dw, w.dtype)]


@ref("Dropout2D")
def _dropout2d(ins, a):
    x, keep = ins[0], a["keep_prob"]
    mask = np.ones(x.shape, bool)
    if keep < 1.0:
        planes = np.random.default_rng(0).random(x.shape[:2]) < keep
        for n, c in np.ndindex(x.shape[:2]):
            mask[n, c] = planes[n, c]
    return [(x * mask / keep).astype(x.dtype), mask]
