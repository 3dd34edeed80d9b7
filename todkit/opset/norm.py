"""Batch normalisation: BatchNorm (5 outputs, updates its moving statistics in training) and
BatchNormGrad, with the semantics of MindSpore's CPU kernels (oneDNN underneath).

- Training (``is_training`` and the run context in train mode): normalise with the batch
  mean and the *biased* batch variance; outputs 3 and 4 (MindSpore's reserve_space_1/2, what
  the CPU kernel fills and BatchNormGrad reads as save_mean / save_variance) hold them, and
  outputs 1 and 2 hold the same (MindSpore documents them as batch_mean / batch_variance).
  The moving statistics (inputs 3, 4) become ``moving = (1 - momentum) * moving + momentum *
  batch`` with the *unbiased* variance (times M/(M-1), M values per channel): MindSpore
  2.10's reference runs (tests/fixtures/reference/bn_momentum) match this to 2e-7 and the
  biased form only to 2e-3; MindSpore Lite's FusedBatchNorm does the same. MINDIR's
  ``momentum`` is 1 - nn.BatchNorm2d's ``momentum``.
- Inference: normalise with the moving statistics, which stay as they are; outputs 1..4 are
  copies of them.

Inputs are [N, C] (BatchNorm1d) or 4-D in ``data_format`` NCHW / NHWC.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.layout import Layout
from todkit.opset.registry import OpDef, op

BN_ATTRS = {"is_training": False, "epsilon": 1e-5, "momentum": 0.1, "data_format": "NCHW"}


def _channel_view(x_ndim: int, fmt: str):
    """(channel axis, reduction axes, reshape of a [C] vector) for an input of this rank."""
    if x_ndim == 2:
        return 1, (0,), lambda v: v
    lay = Layout(fmt)
    return lay.channel_axis, lay.reduce_axes(x_ndim), lay.per_channel


def _check(x, vectors, fmt):
    if len(x.shape) not in (2, 4):
        raise ValueError(f"needs a 2-D or 4-D input, got {list(x.shape)}")
    axis = _channel_view(len(x.shape), fmt)[0]
    c = x.shape[axis]
    for name, v in vectors.items():
        if v.shape != (c,):
            raise ValueError(f"{name} {list(v.shape)} does not match {c} channels")
        if v.dtype != x.dtype:
            raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")
    return TensorType((c,), x.dtype)


def batch_training(a, rt) -> bool:
    return bool(a["is_training"]) and (rt is None or rt.training)


# -- blocked, temporary-free passes --------------------------------------------------------
# Every pass walks the input in blocks of about _BLOCK_BYTES (cache-sized) that hold whole
# channel rows, so a block's few ufunc calls (subtract, multiply, add, reduce) run on cached
# data, and writes only into the outputs or a block-sized scratch (a planned workspace):
# no array the size of the input is allocated. Channel-last inputs (NHWC, [N, C]) are seen
# as rows of k*C values (k rows of C) with the per-channel vectors tiled k times, so NumPy's
# inner loops run ~_ROW elements instead of C; NCHW blocks are (samples, channels, H*W).
# 1 MB blocks and 8192-element rows measured fastest on W4's shapes (bench/README.md).
_BLOCK_BYTES = 1 << 20
_ROW = 8192
# Largest |beta - mean * scale| for which BatchNorm normalises as x * scale + shift (its
# absolute error stays within ~2 * _FOLD_MAX ulps of 1: float32 rounding of the output).
_FOLD_MAX = 8.0
# Attribute key of a parallel context (runtime/workers.Parallel, put there by
# runtime/rewrite_parallel.py when a session has several threads): ``run(fn, count)`` calls
# ``fn(part, lo, hi)`` on contiguous ranges of ``range(count)`` at once, ``scratch(part,
# size, dtype)`` is a flat array private to part >= 1. The block loops below run their
# blocks in such ranges: every block's arithmetic is the same, per-block partial results
# land in their own rows and are combined afterwards in block order, so the results are
# the serial loop's bit for bit.
PARALLEL = "_parallel"


class _Serial:
    """The loops' default: one part, in the caller."""

    parts = 1

    @staticmethod
    def run(fn, count: int) -> None:
        fn(0, 0, count)


SERIAL = _Serial()


class _Blocks:
    """How arrays of one BatchNorm input shape are cut into blocks, and the per-block views
    of the per-channel vectors and of the per-channel accumulators."""

    __slots__ = ("axes", "c", "counts", "groups", "k", "last", "scratch_size", "spans")

    def __init__(self, shape, fmt: str, itemsize: int):
        block = max(1, _BLOCK_BYTES // itemsize)
        self.last = len(shape) == 2 or Layout(fmt).nhwc
        c = self.c = int(shape[-1] if self.last else shape[1])
        if self.last:
            rows = int(np.prod(shape[:-1], dtype=np.int64))
            k = self.k = max(1, min(_ROW // max(c, 1), rows))
            step = max(1, block // (k * max(c, 1))) * k  # rows per block, a multiple of k
            self.spans = [(r, min(r + step, rows)) for r in range(0, rows, step)]
            self.axes = 0
            self.scratch_size = min(step, rows) * c
            # Moment groups: one per block (its k column tiles are folded into C channels).
            self.groups = [(i, i + 1) for i in range(len(self.spans))]
            self.counts = [r1 - r0 for r0, r1 in self.spans]
        else:
            self.k = 1
            n, hw = int(shape[0]), int(shape[2]) * int(shape[3])
            if c * hw >= block:  # one sample at a time, in groups of channels
                cg = max(1, block // max(hw, 1))
                self.spans = [(i, i + 1, c0, min(c0 + cg, c)) for i in range(n)
                              for c0 in range(0, c, cg)]
                self.scratch_size = min(cg, c) * hw
            else:  # whole samples
                nb = max(1, block // max(c * hw, 1))
                self.spans = [(i, min(i + nb, n), 0, c) for i in range(0, n, nb)]
                self.scratch_size = min(nb, n) * c * hw
            self.axes = (0, 2)
            # Moment groups: one row per run of samples (its channel groups are columns).
            starts = sorted({n0 for n0, _, _, _ in self.spans})
            self.groups = [(starts.index(n0), starts.index(n0) + 1) for n0, _, _, _ in self.spans]
            self.counts = [(n1 - n0) * hw for n0, n1, c0, _ in self.spans if c0 == 0]

    def views(self, a: np.ndarray) -> list[np.ndarray]:
        """The blocks of ``a`` (an array of the input's shape), in order."""
        if self.last:
            a2, kc = a.reshape(-1, self.c), self.k * self.c
            return [a2[r0:r1].reshape(-1, kc if (r1 - r0) % self.k == 0 else self.c)
                    for r0, r1 in self.spans]
        a3 = a.reshape(a.shape[0], self.c, -1)
        return [a3[n0:n1, c0:c1] for n0, n1, c0, c1 in self.spans]

    def scratch(self, s: np.ndarray, like: list[np.ndarray]) -> list[np.ndarray]:
        """Blocks of the flat scratch ``s`` shaped as the blocks ``like``."""
        return [s[:b.size].reshape(b.shape) for b in like]

    def slots(self, wide: np.ndarray) -> list[np.ndarray]:
        """Per-block views of a wide per-channel vector (``wide``), 1-D: what a block's
        reduction writes or adds into."""
        return [wide[s0:s1] for s0, s1 in self.slot_bounds()]

    def slot_bounds(self) -> list[tuple[int, int]]:
        """(start, stop) of each block's slot in a wide vector (``slots``)."""
        if self.last:
            kc = self.k * self.c
            return [(0, kc if (r1 - r0) % self.k == 0 else self.c) for r0, r1 in self.spans]
        return [(c0, c1) for _, _, c0, c1 in self.spans]

    def vec(self, v: np.ndarray) -> list[np.ndarray]:
        """Per-block views of the per-channel vector ``v`` that broadcast against the blocks."""
        if self.last:
            if self.k > 1:
                wide = np.empty(self.k * self.c, v.dtype)
                wide.reshape(self.k, self.c)[...] = v
                v = wide
            return self.slots(v)
        return [v[c0:c1, None] for _, _, c0, c1 in self.spans]

    def wide(self, dtype) -> np.ndarray:
        return np.empty(self.k * self.c, dtype)

    def fold(self, wide: np.ndarray, out: np.ndarray) -> None:
        """Per-channel totals of a wide accumulator into ``out`` [C]."""
        np.add.reduce(wide.reshape(self.k, self.c), axis=0, out=out)

    def sum(self, blocks, out: np.ndarray, acc: np.ndarray, part: np.ndarray) -> None:
        """``out`` [C] = per-channel sums over ``blocks`` (partial sums per block)."""
        acc.fill(0)
        for b, a_, p_ in zip(blocks, self.slots(acc), self.slots(part)):
            np.add.reduce(b, axis=self.axes, out=p_)
            a_ += p_
        self.fold(acc, out)

    def parts(self, mat: np.ndarray) -> list[np.ndarray]:
        """Per-block views of a (groups, C) matrix of per-group moments: the channels a
        block's statistics land in."""
        if self.last:
            return [mat[g0] for g0, _ in self.groups]
        return [mat[g0, c0:c1] for (g0, _), (_, _, c0, c1) in zip(self.groups, self.spans)]

    def _reduce(self, b: np.ndarray, wide: np.ndarray, ones: np.ndarray, out: np.ndarray):
        """Per-channel sums of block ``b`` into ``out``. Channel-last: the rows are summed
        by a BLAS product with a ones vector (1.5x faster than ``add.reduce`` on axis 0),
        then the k column tiles folded."""
        if not self.last:
            np.add.reduce(b, axis=self.axes, out=out)
            return
        w = wide[:b.shape[1]]
        np.dot(ones[:b.shape[0]], b, out=w)
        np.add.reduce(w.reshape(-1, self.c), axis=0, out=out)

    def moments(self, xs, ss, parts: np.ndarray, mean: np.ndarray, var: np.ndarray,
                par=SERIAL) -> None:
        """``mean`` and the biased ``var`` [C] reading the input once from memory: each block
        is summed, then centred on its own per-channel mean and its squares summed while it
        is in cache; the blocks' sums and centred sums of squares are combined in float64
        (Chan et al.'s parallel formula: exact but for the rounding of the centring values).
        ``parts``: flat scratch of 2 * groups * C values. (Two full passes, mean then
        (x - mean)^2, read the input twice; a plain sum of squares cancels when |mean| >>
        std.) ``par``: blocks in parallel parts (``PARALLEL``), each with its own scratch
        (``ss`` is part 0's)."""
        g = len(self.counts)
        sums = parts[:g * self.c].reshape(g, self.c)
        sq = parts[g * self.c:2 * g * self.c].reshape(g, self.c)
        dtype = xs[0].dtype
        counts = np.array(self.counts, dtype=dtype)
        rows = max((b.shape[0] for b in xs), default=0)
        s_parts, q_parts = self.parts(sums), self.parts(sq)

        def run(part, lo, hi):
            own = ss[lo:hi] if part == 0 else self.scratch(
                par.scratch(part, self.scratch_size, dtype), xs[lo:hi])
            wide, centre, ones = self.wide(dtype), self.wide(dtype), np.ones(rows, dtype)
            for i, sb in zip(range(lo, hi), own):
                xb, s_, q_, g0 = xs[i], s_parts[i], q_parts[i], self.groups[i][0]
                self._reduce(xb, wide, ones, s_)
                if self.last:
                    c_ = centre[:xb.shape[1]]
                    np.divide(s_, counts[g0], out=c_.reshape(-1, self.c))  # tiled k times
                else:
                    c_ = np.divide(s_, counts[g0], out=centre[:s_.size])[:, None]
                np.subtract(xb, c_, out=sb)
                np.multiply(sb, sb, out=sb)
                self._reduce(sb, wide, ones, q_)
        par.run(run, len(xs))
        # The centring values, recomputed exactly as the loop made them (same division).
        n64 = counts.astype(np.float64)[:, None]
        total = float(n64.sum())
        c64 = (sums / counts[:, None]).astype(np.float64)
        m64 = sums.sum(axis=0, dtype=np.float64) / total
        c64 -= m64
        c64 *= c64
        c64 *= n64
        m2 = sq.sum(axis=0, dtype=np.float64) + c64.sum(axis=0)
        np.copyto(mean, m64, casting="same_kind")
        np.divide(m2, total, out=var, casting="same_kind")

    def affine(self, xs, ys, scale, shift, act=None, par=SERIAL) -> None:
        """y = x * scale + shift, per channel, block by block; then ``act(block)``."""
        ss, ts = self.vec(scale), self.vec(shift)

        def run(part, lo, hi):
            for xb, yb, s, t in zip(xs[lo:hi], ys[lo:hi], ss[lo:hi], ts[lo:hi]):
                np.multiply(xb, s, out=yb)
                yb += t
                if act is not None:
                    act(yb)
        par.run(run, len(xs))

    def normalize(self, xs, ys, mean, scale, shift, act=None, par=SERIAL) -> None:
        """y = (x - mean) * scale + shift, per channel, block by block; then ``act(block)``
        (in place) while the block is in cache: a following activation fused in."""
        ms, ss, ts = self.vec(mean), self.vec(scale), self.vec(shift)

        def run(part, lo, hi):
            for xb, yb, m, s, t in zip(xs[lo:hi], ys[lo:hi], ms[lo:hi], ss[lo:hi], ts[lo:hi]):
                np.subtract(xb, m, out=yb)
                yb *= s
                yb += t
                if act is not None:
                    act(yb)
        par.run(run, len(xs))


@lru_cache(maxsize=256)
def _blocks(shape: tuple[int, ...], fmt: str, itemsize: int) -> _Blocks:
    """The (immutable) block cutting of one input shape, made once per shape."""
    return _Blocks(shape, fmt, itemsize)


def _scratch(outs, n_outs: int, size: int, dtype) -> np.ndarray:
    """The block scratch: the planned workspace after the outputs, else a fresh one (a
    kernel called with its outputs only: the front end's eager path)."""
    if len(outs) > n_outs and outs[n_outs].size >= size:
        return outs[n_outs]
    return np.empty(size, dtype)


def _batch_moments(ins, outs, a):
    """BatchNorm's batch mean and biased variance into outputs 3 and 4; the value count."""
    x = ins[0]
    save_mean, save_var = outs[3], outs[4]
    blocks = _blocks(x.shape, str(a["data_format"]), x.dtype.itemsize)
    xs = blocks.views(x)
    size = blocks.scratch_size
    flat = _scratch(outs, 5, size + 2 * len(blocks.counts) * blocks.c, x.dtype)
    blocks.moments(xs, blocks.scratch(flat, xs), flat[size:], save_mean, save_var,
                   a.get(PARALLEL, SERIAL))
    return x.size // save_var.size


def batch_norm_affine(ins, outs, a, rt, moments=_batch_moments):
    """All of BatchNorm's kernel but y: the statistics (training: the batch's, from
    ``moments(ins, outs, a)``, and the moving ones updated), outputs 1..4, and y's
    per-channel form ``(scale, shift, centre)``: y = x * scale + shift when ``centre`` is
    None, else (x - centre) * scale + shift.
    y = x * scale + (beta - mean * scale) is one ufunc pass fewer than the centred form;
    its extra rounding error is a few ulps of |beta - mean * scale| (the normalised value
    of x = 0), so it is used only while that is small for every channel (W4: at most 2.2);
    else the centred form, which loses nothing when |mean| >> std. The vectors are fresh
    arrays: nothing the caller writes afterwards can change them."""
    gamma, beta, moving_mean, moving_var = ins[-4:]
    _, out_mean, out_var, save_mean, save_var = outs[:5]
    dtype = save_mean.dtype
    if batch_training(a, rt):
        count = moments(ins, outs, a)
        m = dtype.type(a["momentum"])
        moving_mean *= 1 - m
        moving_mean += m * save_mean
        moving_var *= 1 - m
        moving_var += (m * count / max(count - 1, 1)) * save_var
    else:
        np.copyto(save_mean, moving_mean)
        np.copyto(save_var, moving_var)
    np.copyto(out_mean, save_mean)
    np.copyto(out_var, save_var)
    scale = gamma / np.sqrt(save_var + dtype.type(a["epsilon"]))
    shift = beta.astype(np.float64) - save_mean.astype(np.float64) * scale
    if np.all(np.abs(shift) <= _FOLD_MAX):
        return scale, shift.astype(dtype), None
    return scale, beta.copy(), save_mean.copy()


# -- a 1x1 convolution and the BatchNorm of its output, as one call ----------------------
_PRODUCT_BYTES = 1 << 20  # output bytes per row block of the folded product
_GRAM_BYTES = 1 << 18  # float64 input bytes per block of the Gram matrix


def _input_moments(a2: np.ndarray, par=SERIAL):
    """Column means (K,) and covariance (K, K) of ``a2`` (M, K), in float64: blocks of rows
    are shifted by the first block's mean (so the products do not cancel) and their Gram
    matrices summed by BLAS. The shift runs on rows of kk pixels (long inner loops: K is
    16-32 where this is used) and the column sums are a product with ones. In parallel
    parts (``PARALLEL``) the first part sums as it goes and the others keep each block's
    products, added after it in block order (the serial loop's additions)."""
    m, k = a2.shape
    kk = max(1, _ROW // k)
    rows = max(kk, _GRAM_BYTES // (8 * k) // kk * kk)
    n0 = min(rows, m)
    origin = a2[:n0].mean(axis=0, dtype=np.float64)
    wide, ones = np.tile(origin, kk), np.ones(n0)
    total, gram = np.zeros(k), np.zeros((k, k))
    starts = range(0, m, rows)
    kept: list[tuple[int, np.ndarray, np.ndarray]] = []

    def run(part, lo, hi):
        if part == 0:
            buf, sums = np.empty((n0, k)), None
        else:
            buf = par.scratch(part, n0 * k, np.float64).reshape(n0, k)
            sums = np.empty((hi - lo, k)), np.empty((hi - lo, k, k))
            kept.append((lo, *sums))
        for i in range(lo, hi):
            r0 = starts[i]
            n = min(rows, m - r0)
            b = buf[:n]
            if n % kk == 0:
                np.subtract(a2[r0:r0 + n].reshape(-1, kk * k), wide, out=b.reshape(-1, kk * k))
            else:
                np.subtract(a2[r0:r0 + n], origin, out=b)
            if sums is None:
                np.add(total, ones[:n] @ b, out=total)  # total += ...: the closure's names
                np.add(gram, b.T @ b, out=gram)
            else:
                np.matmul(ones[:n], b, out=sums[0][i - lo])
                np.matmul(b.T, b, out=sums[1][i - lo])
    par.run(run, len(starts))
    for _, t, g in sorted(kept, key=lambda e: e[0]):
        for t_, g_ in zip(t, g):
            total += t_
            gram += g_
    d = total / m
    return origin + d, gram / m - np.outer(d, d)


def pointwise_batch_norm(ins, outs, a, rt, act=None) -> None:
    """``act``(BatchNorm(x)) of x = ``a2 @ w^T``, a 1x1 stride-1 NHWC convolution's output
    (ins: the convolution's input [N,H,W,K] and weight [C,1,1,K], then BatchNorm's gamma,
    beta, moving mean and variance; outs: y (or the activation's output), BatchNorm's
    outputs 1..4; ``a``: BatchNorm's attributes). x is never made: its batch mean and
    variance follow from the input's, mean_x = w mean_a and var_x = diag(w cov_a w^T)
    (float64; a product of K x K per input against the convolution's K x C), and the
    normalisation is folded into the weight, y = a2 @ (w^T * scale) + shift, computed in
    row blocks that the shift and the activation finish while they are in cache: a 1x1
    expansion's output (6x its input in MobileNetV2) is written once instead of being
    written, read for the statistics, read and written to normalise and clip. The
    centred form (|shift| too large, see ``batch_norm_affine``) multiplies by w itself.
    The statistics are the exact ones of the exact product, which float32 x carries to
    its rounding; the results differ from the two kernels' at float rounding."""
    x, w = ins[0], ins[1]
    k, c = x.shape[-1], w.shape[0]
    a2 = x.reshape(-1, k)
    par = a.get(PARALLEL, SERIAL)
    wt = w.reshape(c, k).T  # (K, C)

    def moments(ins_, outs_, a_):
        mean_a, cov_a = _input_moments(a2, par)
        w64 = wt.astype(np.float64)
        np.copyto(outs_[3], mean_a @ w64, casting="same_kind")
        var = np.einsum("kc,kc->c", cov_a @ w64, w64)
        np.copyto(outs_[4], np.maximum(var, 0), casting="same_kind")
        return len(a2)

    scale, shift, centre = batch_norm_affine(ins[1:], outs, a, rt, moments)
    y2 = outs[0].reshape(-1, c)
    if centre is None:
        wt = (wt.astype(np.float64) * scale).astype(x.dtype)
    kk = max(1, _ROW // c)  # rows of the wide view: kk pixels of C channels
    rows = max(kk, _PRODUCT_BYTES // (c * x.itemsize) // kk * kk)
    wide = [None if v is None else np.tile(v, kk) for v in (scale, shift, centre)]
    starts = range(0, len(a2), rows)

    def run(part, lo, hi):
        for r0 in starts[lo:hi]:
            r1 = min(r0 + rows, len(a2))
            yb = y2[r0:r1]
            np.matmul(a2[r0:r1], wt, out=yb)
            vecs = wide if (r1 - r0) % kk == 0 else (scale, shift, centre)
            view = yb.reshape(-1, len(vecs[0]))
            if centre is not None:
                view -= vecs[2]
                view *= vecs[0]
            view += vecs[1]
            if act is not None:
                act(view)
    par.run(run, len(starts))


def batch_norm(ins, outs, a, rt, act=None) -> None:
    """BatchNorm's kernel; ``outs[0]`` gets y, or with ``act`` (an in-place element-wise
    function) act(y): a ReLU6 / ReLU fused in by the runtime (runtime/rewrite_norm_act.py),
    which then passes that activation's output as ``outs[0]``. The normalisation reads
    only x and private per-channel vectors, so ``outs[0]`` may be x itself (the runtime
    places a dead x's bytes there) or overlap the statistics outputs and the scratch."""
    x, y = ins[0], outs[0]
    scale, shift, centre = batch_norm_affine(ins, outs, a, rt)
    blocks = _blocks(x.shape, str(a["data_format"]), x.dtype.itemsize)
    par = a.get(PARALLEL, SERIAL)
    if centre is None:
        blocks.affine(blocks.views(x), blocks.views(y), scale, shift, act, par)
    else:
        blocks.normalize(blocks.views(x), blocks.views(y), centre, scale, shift, act, par)


def _workspace(x, fmt, moments: bool = False) -> list[TensorType]:
    """The block scratch, and with ``moments`` after it the per-group sums and centred sums
    of squares (2 * groups * C values: ~1/16 of the input for W4's widest layer)."""
    if len(x.shape) not in (2, 4):
        return []
    blocks = _blocks(tuple(x.shape), str(fmt), x.dtype.itemsize)
    size = blocks.scratch_size + (2 * len(blocks.counts) * blocks.c if moments else 0)
    return [TensorType((max(size, 1),), x.dtype)]


@op
class BatchNorm(OpDef):
    """(x, gamma, beta, moving_mean, moving_variance) -> (y, batch_mean, batch_variance,
    saved_mean, saved_variance); training updates moving_mean / moving_variance in place."""

    attrs = dict(BN_ATTRS)
    mutates = (3, 4)
    inplace = {0: 0}

    @classmethod
    def mutated(cls, attrs):
        # Inference-mode BatchNorm only reads its moving statistics.
        return cls.mutates if attrs["is_training"] else ()

    def infer(ins, a):
        x, gamma, beta, mean, var = ins
        vec = _check(x, {"gamma": gamma, "beta": beta, "moving_mean": mean,
                         "moving_variance": var}, a["data_format"])
        return [x, vec, vec, vec, vec]

    def workspace(ins, a):
        # Training: a block of (x - block mean)^2 and the per-group moments.
        return _workspace(ins[0], a["data_format"], moments=True) if a["is_training"] else []

    def kernel(ins, outs, a, rt):
        batch_norm(ins, outs, a, rt)

    def grad(g, node, douts):
        dy = douts[0]
        x, gamma, beta, mean, var = node.inputs
        if dy is None or not any(g.wants(v) for v in (x, gamma, beta)):
            return [None] * 5
        a = node.attrs
        if a["is_training"]:
            saved_mean, saved_var = node.outputs[3], node.outputs[4]
        else:
            saved_mean, saved_var = mean, var
        dx, dgamma, dbeta = g.emit(
            "BatchNormGrad", [dy, x, gamma, saved_mean, saved_var, node.outputs[2]],
            is_training=a["is_training"], epsilon=a["epsilon"], data_format=a["data_format"])
        return [dx if g.wants(x) else None, dgamma if g.wants(gamma) else None,
                dbeta if g.wants(beta) else None, None, None]


@op
class BatchNormGrad(OpDef):
    """(dy, x, gamma, saved_mean, saved_variance, reserve) -> (dx, dgamma, dbeta). The saved
    statistics are BatchNorm's outputs 3 and 4 in training, the moving ones in inference;
    ``reserve`` (BatchNorm's output 2) is not read, as in MindSpore's CPU kernel."""

    attrs = {"is_training": False, "epsilon": 1e-5, "data_format": "NCHW"}

    def infer(ins, a):
        dy, x, gamma, mean, var, _reserve = ins
        if dy != x:
            raise ValueError(f"dy {dy} must match x {x}")
        vec = _check(x, {"gamma": gamma, "saved_mean": mean, "saved_variance": var},
                     a["data_format"])
        return [x, vec, vec]

    def workspace(ins, a):
        # A block of dy * (x - mean) for dgamma.
        return _workspace(ins[1], a["data_format"])

    def kernel(ins, outs, a, rt):
        batch_norm_grad(ins, outs, a)


def _grad_sums(blocks, xs, dys, ss, mean, par, dbeta, dgamma) -> None:
    """dbeta = sum(dy), dgamma (before the inv_std factor) = sum(dy * (x - mean)), in one
    pass. In parallel parts (``PARALLEL``), each with its own scratch, the first part adds
    its blocks' sums up as it goes and the others keep theirs per block, added after it in
    block order: the additions of the serial loop, in its order."""
    dtype = xs[0].dtype
    acc_b, acc_g, tmp = (blocks.wide(dtype) for _ in range(3))
    acc_b.fill(0)
    acc_g.fill(0)
    bounds = blocks.slot_bounds()
    ms = blocks.vec(mean)
    kept: list[tuple[int, np.ndarray]] = []  # (first block, its per-block sums) per part

    def run(part, lo, hi):
        if part == 0:
            own, rows = ss[lo:hi], None
        else:
            own = blocks.scratch(par.scratch(part, blocks.scratch_size, dtype), xs[lo:hi])
            rows = np.empty((hi - lo, 2, tmp.size), dtype)
            kept.append((lo, rows))
        for i, sb in zip(range(lo, hi), own):
            s0, s1 = bounds[i]
            pb, pg = (tmp, tmp) if rows is None else rows[i - lo]
            np.add.reduce(dys[i], axis=blocks.axes, out=pb[s0:s1])
            if rows is None:
                acc_b[s0:s1] += pb[s0:s1]
            np.subtract(xs[i], ms[i], out=sb)
            sb *= dys[i]
            np.add.reduce(sb, axis=blocks.axes, out=pg[s0:s1])
            if rows is None:
                acc_g[s0:s1] += pg[s0:s1]
    par.run(run, len(xs))
    for lo, rows in sorted(kept, key=lambda k: k[0]):
        for i, (pb, pg) in enumerate(rows, start=lo):
            s0, s1 = bounds[i]
            acc_b[s0:s1] += pb[s0:s1]
            acc_g[s0:s1] += pg[s0:s1]
    blocks.fold(acc_b, dbeta)
    blocks.fold(acc_g, dgamma)


def batch_norm_grad(ins, outs, a) -> None:
    """BatchNormGrad's kernel: one pass for dbeta and dgamma, one for dx; both run their
    blocks in parallel parts under ``PARALLEL``."""
    dy, x, gamma, mean, var, _ = ins
    dx, dgamma, dbeta = outs[:3]
    par = a.get(PARALLEL, SERIAL)
    blocks = _blocks(x.shape, str(a["data_format"]), x.dtype.itemsize)
    xs, dys, dxs = blocks.views(x), blocks.views(dy), blocks.views(dx)
    ss = blocks.scratch(_scratch(outs, 3, blocks.scratch_size, x.dtype), xs)
    inv_std = 1 / np.sqrt(var + x.dtype.type(a["epsilon"]))
    _grad_sums(blocks, xs, dys, ss, mean, par, dbeta, dgamma)
    dgamma *= inv_std
    if a["is_training"]:
        # The batch statistics depend on x:
        # dx = g*inv_std * (dy - (x_hat*dgamma/M + dbeta/M)), x_hat = (x - mean)*inv_std.
        count = x.size // blocks.c
        vecs = list(zip(blocks.vec(mean), blocks.vec(inv_std * dgamma / count),
                        blocks.vec(dbeta / count), blocks.vec(gamma * inv_std)))

        def run(part, lo, hi):
            for xb, dyb, dxb, (m, k1, k2, k3) in zip(xs[lo:hi], dys[lo:hi], dxs[lo:hi],
                                                     vecs[lo:hi]):
                np.subtract(xb, m, out=dxb)
                dxb *= k1
                dxb += k2
                np.subtract(dyb, dxb, out=dxb)
                dxb *= k3
    else:
        k3s = blocks.vec(gamma * inv_std)

        def run(part, lo, hi):
            for dyb, dxb, k3 in zip(dys[lo:hi], dxs[lo:hi], k3s[lo:hi]):
                np.multiply(dyb, k3, out=dxb)
    par.run(run, len(xs))
