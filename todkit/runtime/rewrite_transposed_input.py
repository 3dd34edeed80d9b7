"""A Dense layer reading a layout-transposed graph input, run on the input as it is.

The converter feeds 4-D data NHWC and, where the network flattens the NCHW tensor into a
Dense layer (the seed's MyNet, W3), inserts ``Transpose(input, (0, 3, 1, 2))`` before the
Reshape: a strided copy of the whole batch every step (19 MB, ~1.9 ms for W3) that only the
forward product and the weight-gradient product read. Both products contract or produce the
flattened feature axis K, so the transpose can move from the batch to the K axis of the
other operand, which is much smaller (W3: 10 x K against 32 x K):
- forward ``R @ W^T`` (R the flattened transposed input): gather W's columns into the
  input's order once per step, then ``X @ Wp^T`` with X the input itself, flattened;
- weight gradient ``dY^T @ R``: ``dY^T @ X`` into scratch, then one permuted copy into the
  gradient's own (NCHW-ordered) buffer, which the optimizer and the guard read as before.

Only the products' summation order over K changes (float rounding). The Transpose's output
is never written, so its arena bytes (dead but reserved from the Transpose to the last
product) hold the scratch; a per-session array only when they are too few. Applied only
when every reader of the transposed value is such a product through a Reshape/Flatten view
and nothing outside the rewritten steps reads either value; the per-node kernels stay bound
(the traced loop still writes the transposed value).
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass

import numpy as np

from todkit.ir.graph import Node, Value
from todkit.opset.registry import get_op
from todkit.runtime.blas import openblas_libraries
from todkit.runtime.workers import ranges

_FLATTENING = ("Reshape", "Flatten")
# Copies along a K axis this short run slice by slice (each slice contiguous on one side;
# one strided copy of W3's [10, 224, 224, 3] weight is 3x slower).
_SPLIT_MAX = 16
_ROW_MAJOR, _TRANS = 101, 112  # CBLAS enums


def _find_omatcopy():
    """OpenBLAS's ``cblas_somatcopy`` / ``domatcopy`` (out-of-place 2-D transpose) from the
    library NumPy is linked with, as ``{dtype: function}``; empty if there is none. W3's
    weight permutation (10 rows of [3, 50176] -> [50176, 3]) takes 0.20 ms by it against
    0.38 ms for NumPy's three strided copies (as many each way). It multiplies by alpha = 1:
    every value keeps its bits except a signaling NaN, which comes out quiet; the products
    that read the copies make NaN of either."""
    found = {}
    for lib in openblas_libraries():
        for prefix, suffix, index in (("scipy_cblas_", "64_", ctypes.c_int64),
                                      ("cblas_", "64_", ctypes.c_int64),
                                      ("scipy_cblas_", "", ctypes.c_int32),
                                      ("cblas_", "", ctypes.c_int32)):
            for letter, dtype, scalar in (("s", np.float32, ctypes.c_float),
                                          ("d", np.float64, ctypes.c_double)):
                fn = getattr(lib, f"{prefix}{letter}omatcopy{suffix}", None)
                if fn is None or np.dtype(dtype) in found:
                    continue
                fn.restype = None
                fn.argtypes = [ctypes.c_int, ctypes.c_int, index, index, scalar,
                               ctypes.c_void_p, index, ctypes.c_void_p, index]
                found[np.dtype(dtype)] = fn
        if found:
            return found
    return found


_OMATCOPY = _find_omatcopy()


@dataclass
class _Layout:
    """How the flattened transposed tensor's K axis maps onto the input's."""

    t_rest: tuple[int, ...]  # the transposed tensor's shape after the batch axis
    x_rest: tuple[int, ...]  # the input's shape after the batch axis
    order: tuple[int, ...]  # axes of t_rest in the input's order

    def x_view(self, a: np.ndarray, ax: int) -> np.ndarray:
        """2-D ``a`` with its K axis ``ax`` laid out as the input's dims."""
        return a.reshape(self.x_rest + a.shape[1:] if ax == 0 else a.shape[:1] + self.x_rest)

    def t_view(self, a: np.ndarray, ax: int) -> np.ndarray:
        """2-D ``a`` whose K axis ``ax`` is in the transposed order, as a view in the input's
        dims (same shape as ``x_view``)."""
        if ax == 0:
            k = len(self.t_rest)
            return a.reshape(self.t_rest + a.shape[1:]).transpose(self.order + (k,))
        return a.reshape(a.shape[:1] + self.t_rest).transpose((0,) + tuple(
            d + 1 for d in self.order))

    def rotation(self) -> tuple[int, int] | None:
        """(A, B) when K in the transposed order is an [A, B] matrix whose transpose [B, A]
        is K in the input's order (NHWC -> NCHW: A = C, B = H*W), else None."""
        n = len(self.order)
        for s in range(1, n):
            if self.order == tuple(range(s, n)) + tuple(range(s)):
                return int(np.prod(self.t_rest[:s])), int(np.prod(self.t_rest[s:]))
        return None


def _copy_plan(lay: _Layout, dst: np.ndarray, src: np.ndarray, ax: int, to_x: bool
               ) -> list[tuple]:
    """Calls ``(function, *args)`` that copy 2-D ``src`` into 2-D ``dst`` (same shape),
    permuting the K axis ``ax`` into the input's order (``to_x``) or back. Row by row with
    OpenBLAS's 2-D transpose when K is one (``_Layout.rotation``) and the rows are
    contiguous; else NumPy copies, slice by slice along the input's last axis when it is
    short and innermost (the permuted side then runs contiguous), or one copy."""
    rot = lay.rotation()
    fn = _OMATCOPY.get(dst.dtype)
    if (ax == 1 and rot is not None and fn is not None and dst.dtype == src.dtype
            and dst.flags.c_contiguous and src.flags.c_contiguous):
        a, b = rot if to_x else rot[::-1]  # src rows are [a, b] matrices, dst rows [b, a]
        return [(fn, _ROW_MAJOR, _TRANS, a, b, 1.0, s.ctypes.data, b, d.ctypes.data, a)
                for d, s in zip(dst, src)]
    xd, td = lay.x_view(dst if to_x else src, ax), lay.t_view(src if to_x else dst, ax)
    d, s = (xd, td) if to_x else (td, xd)
    if ax == 1 and d.shape[-1] <= _SPLIT_MAX:
        return [(np.copyto, d[..., c], s[..., c]) for c in range(d.shape[-1])]
    return [(np.copyto, d, s)]


def _copy(calls) -> None:
    for fn, *args in calls:
        fn(*args)


def _forward(ins, outs, a, rt):
    """Gather the other operand into the input's K order, then the product on the input
    (into ``out_t``, the output's transpose, when it is given)."""
    _copy(a["copies"])
    out_t = a["out_t"]
    if out_t is None:
        np.dot(ins[0], ins[1], out=outs[0])
    else:
        np.dot(ins[0], ins[1], out=out_t)
        np.copyto(outs[0], out_t.T)


def _gradient(ins, outs, a, rt):
    """The product on the input into scratch, then scattered into the K-ordered output."""
    np.dot(ins[0], ins[1], out=a["scratch"])
    _copy(a["copies"])


def split_call(entry, parts: int, run_tasks):
    """``entry`` (this module's call) as phases of ``parts`` pieces run by ``run_tasks``
    (rewrite_parallel at two threads): the permuting copies by rows; the forward product by
    its contracted axis (partial products summed in piece order: float rounding), the
    gradient product by the longer axis of its output (each piece its own block). None
    for another call, or where an axis is too short to give every part a piece."""
    kernel, ins, outs, attrs = entry
    if kernel not in (_forward, _gradient) or parts < 2:
        return None
    left, right = ins
    copies = attrs["copies"]
    copy_parts = [copies[lo:hi] for lo, hi in ranges(len(copies), parts)]
    if kernel is _gradient:
        dst = attrs["scratch"]
        if dst.shape[0] >= dst.shape[1]:  # (W3 with a [K, out] weight: K rows)
            cuts = ranges(dst.shape[0], parts)
            products = [lambda lo=lo, hi=hi: np.matmul(left[lo:hi], right, out=dst[lo:hi])
                        for lo, hi in cuts]
        else:  # (W3: [out, K], K columns)
            cuts = ranges(dst.shape[1], parts)
            products = [lambda lo=lo, hi=hi: np.matmul(left, right[:, lo:hi],
                                                       out=dst[:, lo:hi]) for lo, hi in cuts]
        phases = [products, [lambda c=c: _copy(c) for c in copy_parts]]
    else:
        target = attrs["out_t"] if attrs["out_t"] is not None else outs[0]
        cuts = ranges(left.shape[1], parts)
        partial = [np.empty(target.shape, target.dtype) for _ in cuts]
        products = [lambda lo=lo, hi=hi, p=p: np.matmul(left[:, lo:hi], right[lo:hi], out=p)
                    for (lo, hi), p in zip(cuts, partial)]

        def total():
            np.add(partial[0], partial[1], out=target)
            for p in partial[2:]:
                np.add(target, p, out=target)
            if attrs["out_t"] is not None:
                np.copyto(outs[0], target.T)
        phases = [[lambda c=c: _copy(c) for c in copy_parts], products, [total]]
    if len(cuts) < parts:
        return None

    def split(ins_, outs_, attrs_, rt):
        for tasks in phases:
            if len(tasks) == 1:
                tasks[0]()
            else:
                run_tasks(tasks)
    return split, ins, outs, attrs


def _readers(nodes: list[Node]) -> dict[int, list[int]]:
    readers: dict[int, list[int]] = {}
    for step, node in enumerate(nodes):
        for v in node.inputs:
            readers.setdefault(id(v), []).append(step)
    return readers


def _layout(node: Node) -> _Layout | None:
    """The layout of a batch-first Transpose of rank >= 3, else None."""
    perm = tuple(int(p) for p in node.attrs["perm"])
    if len(perm) < 3 or perm[0] != 0 or perm == tuple(range(len(perm))):
        return None
    x_shape, t_shape = node.inputs[0].type.shape, node.outputs[0].type.shape
    inverse = tuple(int(i) for i in np.argsort(perm))
    return _Layout(t_shape[1:], x_shape[1:], tuple(inverse[j] - 1 for j in range(1, len(perm))))


def _mutated(nodes: list[Node]) -> set[int]:
    return {id(n.inputs[k]) for n in nodes for k in get_op(n.op).mutated(n.attrs)
            if k < len(n.inputs)}


class _Match:
    """One Transpose with every product reading it; builds their replacement calls."""

    def __init__(self, ex, step: int, layout: _Layout):
        self.ex, self.step, self.layout = ex, step, layout
        self.products: list[tuple[int, int]] = []  # (step, index of the flattened input)

    def scratch(self, shape: tuple[int, ...], dtype) -> np.ndarray:
        """Scratch in the transposed value's unused arena bytes when they suffice."""
        t = self.ex.array(self.ex.nodes[self.step].outputs[0]).reshape(-1)
        size = int(np.prod(shape))
        if t.dtype == dtype and t.size >= size and t.flags.c_contiguous:
            return t[:size].reshape(shape)
        return np.empty(shape, dtype)

    def entry(self, step: int, j: int) -> tuple:
        """The replacement call of product ``step`` whose input ``j`` is flattened."""
        node = self.ex.nodes[step]
        x = self.ex.bound[self.step][1][0]
        x_flat = x.reshape(x.shape[0], -1)
        _, ins, outs, _ = self.ex.bound[step]
        ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
        other = ins[1 - j]
        out = outs[0]
        lay = self.layout
        if (j == 0 and not ta) or (j == 1 and tb):  # K is contracted: permute the other
            ax = (1 if tb else 0) if j == 0 else (0 if ta else 1)
            perm_other = self.scratch(other.shape, other.dtype)
            copies = _copy_plan(lay, perm_other, other, ax, to_x=True)
            a = perm_other.T if (tb if j == 0 else ta) else perm_other
            # The arrays the copies' raw pointers address stay referenced by the entry.
            attrs = {"copies": copies, "scratch": perm_other, "source": other, "out_t": None}
            if j == 1:
                return _forward, [a, x_flat.T], [out], attrs
            # The weight as the left factor (out^T = op(w)^T @ x^T, then one small copy):
            # OpenBLAS runs W3's [32, K] x [K, 10] 3-6% faster so (0.13 ms in the step).
            attrs["out_t"] = np.empty(out.shape[::-1], out.dtype)
            return _forward, [a.T, x_flat.T], [out], attrs
        ax = 1 if j == 1 else 0  # K is an axis of the output: compute, then scatter
        scratch = self.scratch(out.shape, out.dtype)
        copies = _copy_plan(lay, out, scratch, ax, to_x=False)
        a = other.T if (ta if j == 1 else tb) else other
        operands = [a, x_flat] if j == 1 else [x_flat.T, a]
        return _gradient, operands, [out], {"copies": copies, "scratch": scratch}


def _match(ex, ctx, step: int, readers, mutated) -> _Match | None:
    """The Transpose at ``step`` and its products, if all of them can be rewritten."""
    node = ex.nodes[step]
    if node.op != "Transpose" or ex.bound[step][0] is not get_op("Transpose").kernel:
        return None
    x, t = node.inputs[0], node.outputs[0]
    layout = _layout(node)
    # The input must hold its data until the last product: a graph input nothing updates.
    if (layout is None or x.is_const or x.producer is not None or id(x) in mutated
            or id(t) in ex.aliases or id(t) in ctx.outside or t.type.dtype.np.kind != "f"):
        return None
    m = _Match(ex, step, layout)
    n = t.type.shape[0]
    k = t.type.size // n if n else 0
    for r_step in readers.get(id(t), []):
        flat = ex.nodes[r_step]
        r = flat.outputs[0] if flat.outputs else None
        if (flat.op not in _FLATTENING or r is None or r.type.shape != (n, k)
                or ex.aliases.get(id(r)) is not t or id(r) in ctx.outside):
            return None
        for p_step in readers.get(id(r), []):
            j = _product_input(ex, ctx, p_step, r, t)
            if j is None:
                return None
            m.products.append((p_step, j))
    if not m.products:
        return None
    side = {s < ctx.split for s in [step] + [s for s, _ in m.products]}
    return m if len(side) == 1 else None


def _product_input(ex, ctx, step: int, r: Value, t: Value) -> int | None:
    """Which input of the MatMul at ``step`` is ``r``, if the call can be rewritten."""
    node = ex.nodes[step]
    if (node.op != "MatMul" or step in ctx.taken
            or ex.bound[step][0] is not get_op("MatMul").kernel):
        return None
    ids = [id(v) for v in node.inputs]
    other = node.inputs[1 - ids.index(id(r))] if id(r) in ids else None
    # The other operand must not be the transposed value too: it is never written.
    if ids.count(id(r)) != 1 or other is t or ex.aliases.get(id(other)) is t:
        return None
    _, ins, outs, _ = ex.bound[step]
    dt = t.type.dtype.np
    if any(a.dtype != dt for a in ins + outs[:1]) or not outs[0].flags.c_contiguous:
        return None
    return ids.index(id(r))


def rewrite_transposed_input(ex, ctx) -> dict:
    """``{step: entry or None}``: each rewritable Transpose makes no call, its products
    run on the untransposed input (see the module docstring)."""
    readers, mutated = _readers(ex.nodes), _mutated(ex.nodes)
    fused: dict = {}
    for step in range(len(ex.nodes)):
        if step in ctx.taken or step in fused:
            continue
        m = _match(ex, ctx, step, readers, mutated)
        if m is None or any(s in fused for s, _ in m.products):
            continue
        fused[step] = None
        for p_step, j in m.products:
            fused[p_step] = m.entry(p_step, j)
    return fused
