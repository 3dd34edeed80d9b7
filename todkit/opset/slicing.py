"""Tensor slicing (StridedSlice + StridedSliceGrad) and batched products (BatchMatMul).

MindSpore 2.10 exports Python indexing of a tensor (``h[:, 2:8]``, ``h[:, ::-2]``,
``h[:, 0]``) as ``StridedSlice(x, begin, end, strides, begin_mask, end_mask, ellipsis_mask,
new_axis_mask, shrink_axis_mask)`` and its gradient as ``StridedSliceGrad(dout, shapex,
begin, end, strides)`` with the masks as primitive attributes (tests/fixtures/reference/
slice_momentum). Its front end resolves ``...`` and ``None`` before export (into full-axis
entries and ExpandDims), so the masks a real export carries are begin / end masks and
shrink masks for integer indices; ellipsis_mask and new_axis_mask must be 0 here. The
semantics are TensorFlow's, which Python's slices reproduce per axis: bit i of begin_mask /
end_mask drops begin[i] / end[i] (the slice runs from / to the end the stride points at),
bit i of shrink_axis_mask takes the single index begin[i] and drops the axis; axes past
len(begin) are taken whole. Lite's StridedSlice / StridedSliceGrad keep the masks as
attributes and take begin, end, strides (and shapex) as constant int32 inputs.

``ops.matmul`` (2.10's MatMulExt) on operands of rank 3 and more is ``BatchMatMul``: NumPy's
matmul over the last two axes, the leading (batch) axes broadcast, with MindSpore
BatchMatMul's ``transpose_a`` / ``transpose_b`` (swapping the last two axes). Lite's
MatMulFusion computes the same (batched, broadcasting, ranks padded with leading 1s), so the
.ms form is MatMulFusion as for MatMul; MatMul itself stays the 2-D op the runtime's fast
paths (Dense fusions, parallel pieces) are written for. The MINDIR reader reads MatMulExt
as MatMul when both operands are 2-D, else as BatchMatMul (formats/mindir/optable.py).
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.math import sum_to_shape
from todkit.opset.nn import product_grad
from todkit.opset.registry import REQUIRED, OpDef, op

MASKS = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")
_SLICE_ATTRS = {"begin": REQUIRED, "end": REQUIRED, "strides": REQUIRED,
                **{m: 0 for m in MASKS}}


def unsupported_masks(a: dict) -> str:
    """The masks a node uses that todkit does not (empty when it supports them all)."""
    return ", ".join(f"{m}={int(a.get(m, 0))}" for m in ("ellipsis_mask", "new_axis_mask")
                     if int(a.get(m, 0)))


def slice_index(shape, a) -> tuple[tuple, tuple[int, ...]]:
    """NumPy's index for ``x[...]`` of a strided slice of a ``shape`` tensor, and the shape
    it gives (shrunk axes dropped)."""
    begin, end, strides = (tuple(int(v) for v in a[k]) for k in ("begin", "end", "strides"))
    n = len(begin)
    if len(end) != n or len(strides) != n:
        raise ValueError(f"begin {list(begin)}, end {list(end)} and strides {list(strides)} "
                         "differ in length")
    if n > len(shape):
        raise ValueError(f"{n} slice entries for a rank-{len(shape)} tensor")
    bad = unsupported_masks(a)
    if bad:
        raise ValueError(f"{bad}: only begin_mask, end_mask and shrink_axis_mask are supported")
    bm, em, sm = (int(a[m]) for m in ("begin_mask", "end_mask", "shrink_axis_mask"))
    if min(bm, em, sm) < 0:
        raise ValueError("masks must not be negative")
    index, out = [], []
    for i, dim in enumerate(shape):
        if i >= n:
            index.append(slice(None))
            out.append(dim)
            continue
        if strides[i] == 0:
            raise ValueError(f"stride of axis {i} is 0")
        if sm >> i & 1:
            k = begin[i] + dim if begin[i] < 0 else begin[i]
            if not 0 <= k < dim:
                raise ValueError(f"index {begin[i]} is out of range for axis {i} of size {dim}")
            index.append(k)
            continue
        s = slice(None if bm >> i & 1 else begin[i], None if em >> i & 1 else end[i],
                  strides[i])
        index.append(s)
        out.append(len(range(*s.indices(dim))))
    return tuple(index), tuple(out)


def _slice_attrs(node) -> dict:
    return {k: node.attrs[k] for k in ("begin", "end", "strides", *MASKS)}


@op
class StridedSlice(OpDef):
    """x[begin:end:strides] per axis, with MindSpore's masks (module docstring)."""

    attrs = dict(_SLICE_ATTRS)

    def infer(ins, a):
        (x,) = ins
        return [TensorType(slice_index(x.shape, a)[1], x.dtype)]

    def kernel(ins, outs, a, rt):
        index, _ = slice_index(ins[0].shape, a)
        np.copyto(outs[0], ins[0][index])

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [g.emit("StridedSliceGrad", [douts[0]], shapex=tuple(x.type.shape),
                       **_slice_attrs(node))]


@op
class StridedSliceGrad(OpDef):
    """dout -> zeros of ``shapex`` with dout placed where StridedSlice took its slice."""

    attrs = {"shapex": REQUIRED, **_SLICE_ATTRS}

    def infer(ins, a):
        (dout,) = ins
        shape = tuple(int(d) for d in a["shapex"])
        if any(d < 0 for d in shape):
            raise ValueError(f"shapex {list(shape)} has a negative extent")
        _, sliced = slice_index(shape, a)
        if dout.shape != sliced:
            raise ValueError(f"dout {list(dout.shape)} is not the slice's shape {list(sliced)}")
        return [TensorType(shape, dout.dtype)]

    def kernel(ins, outs, a, rt):
        out = outs[0]
        index, _ = slice_index(out.shape, a)
        out[...] = 0
        out[index] = ins[0]

    def grad(g, node, douts):
        (dout,) = node.inputs
        if not g.wants(dout):
            return [None]
        return [g.emit("StridedSlice", [douts[0]], **_slice_attrs(node))]


def _operand(shape, transpose: bool) -> tuple[int, ...]:
    return shape[:-2] + (shape[-1], shape[-2]) if transpose else shape


@op
class BatchMatMul(OpDef):
    """op(x) @ op(w) over the last two axes, the batch axes broadcast (ranks >= 2; op swaps
    the last two axes where transpose_a / transpose_b say so)."""

    attrs = {"transpose_a": False, "transpose_b": False}

    def infer(ins, a):
        x, w = ins
        if len(x.shape) < 2 or len(w.shape) < 2:
            raise ValueError("BatchMatMul takes inputs of rank >= 2")
        if x.dtype != w.dtype:
            raise ValueError(f"operand dtypes differ ({x.dtype.name} vs {w.dtype.name})")
        xs, ws = _operand(x.shape, a["transpose_a"]), _operand(w.shape, a["transpose_b"])
        if xs[-1] != ws[-2]:
            raise ValueError(f"inner dimensions differ ({xs[-1]} vs {ws[-2]})")
        try:
            batch = np.broadcast_shapes(xs[:-2], ws[:-2])
        except ValueError:
            raise ValueError(f"batch shapes {list(xs[:-2])} and {list(ws[:-2])} do not "
                             "broadcast") from None
        return [TensorType(tuple(batch) + (xs[-2], ws[-1]), x.dtype)]

    def kernel(ins, outs, a, rt):
        x, w = ins
        x = np.swapaxes(x, -1, -2) if a["transpose_a"] else x
        w = np.swapaxes(w, -1, -2) if a["transpose_b"] else w
        np.matmul(x, w, out=outs[0])

    def grad(g, node, douts):
        (dy,) = douts
        x, w = node.inputs
        ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
        # As MatMul's rule, batch by batch; a gradient over broadcast batch axes is summed
        # back to the input's shape. A 2-D weight under a batched x gets one 2-D product
        # over the flattened batch instead (MindSpore 2.10's MatMulExt gradient does too).
        dx = dw = None
        if g.wants(x):
            dx = sum_to_shape(g, product_grad(g, "BatchMatMul", node, dy, 0), x.type.shape)
        if g.wants(w):
            if len(w.type.shape) == 2 and not ta:
                k = x.type.shape[-1]
                n = dy.type.shape[-1]
                x2 = g.emit("Reshape", [x], shape=(-1, k))
                dy2 = g.emit("Reshape", [dy], shape=(-1, n))
                dw = g.emit("MatMul", [dy2, x2], transpose_a=True) if tb else \
                    g.emit("MatMul", [x2, dy2], transpose_a=True)
            else:
                dw = sum_to_shape(g, product_grad(g, "BatchMatMul", node, dy, 1), w.type.shape)
        return [dx, dw]
