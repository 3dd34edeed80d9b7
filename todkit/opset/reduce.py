"""Reductions and their companion Tile: ReduceSum, ReduceMean, ReduceMax (``axis`` tuple,
empty = all axes; ``keep_dims``) and Tile (``multiples``).

Gradients as MindSpore's bprop builds them: the incoming gradient is reshaped to the input's
rank with the reduced axes kept as 1 (Reshape), tiled back to the input's shape (Tile), and
for the mean divided by the number of reduced elements (RealDiv by a scalar constant).
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op


def reduced_axes(ndim: int, axis) -> tuple[int, ...]:
    axis = (axis,) if isinstance(axis, (int, np.integer)) else tuple(int(v) for v in axis)
    if not axis:
        return tuple(range(ndim))
    out = []
    for v in axis:
        if not -ndim <= v < max(ndim, 1):
            raise ValueError(f"axis {v} is out of range for rank {ndim}")
        out.append(v % ndim if ndim else 0)
    if len(set(out)) != len(out):
        raise ValueError(f"axis {list(axis)} repeats an axis")
    return tuple(sorted(out)) if ndim else ()


def _reduced_type(x, a) -> TensorType:
    if a.get("skip_mode") and not tuple(a["axis"]):
        return x
    axes = reduced_axes(len(x.shape), a["axis"])
    if a["keep_dims"]:
        shape = tuple(1 if i in axes else d for i, d in enumerate(x.shape))
    else:
        shape = tuple(d for i, d in enumerate(x.shape) if i not in axes)
    return TensorType(shape, x.dtype)


def _kernel_axes(x, a):
    if a.get("skip_mode") and not tuple(a["axis"]):
        return None
    return reduced_axes(x.ndim, a["axis"])


def _spread_back(g, node, dy):
    """dy reshaped with the reduced axes kept, then tiled to the input's shape."""
    (x,) = node.inputs
    shape = x.type.shape
    axes = _kernel_axes(np.empty(shape), node.attrs)
    if axes is None:
        return dy
    kept = tuple(1 if i in axes else d for i, d in enumerate(shape))
    if dy.type.shape != kept:
        dy = g.emit("Reshape", [dy], shape=kept)
    multiples = tuple(d // k for d, k in zip(shape, kept))
    if any(m != 1 for m in multiples):
        dy = g.emit("Tile", [dy], multiples=multiples)
    return dy


@op
class ReduceSum(OpDef):
    attrs = {"axis": (), "keep_dims": False, "skip_mode": False}

    def infer(ins, a):
        return [_reduced_type(ins[0], a)]

    def kernel(ins, outs, a, rt):
        axes = _kernel_axes(ins[0], a)
        if axes is None:
            np.copyto(outs[0], ins[0])
        else:
            np.sum(ins[0], axis=axes, keepdims=bool(a["keep_dims"]), out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        return [_spread_back(g, node, douts[0]) if g.wants(x) else None]


@op
class ReduceMean(OpDef):
    attrs = {"axis": (), "keep_dims": False}

    def infer(ins, a):
        return [_reduced_type(ins[0], a)]

    def kernel(ins, outs, a, rt):
        np.mean(ins[0], axis=_kernel_axes(ins[0], a), keepdims=bool(a["keep_dims"]),
                out=outs[0])

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        count = x.type.size // max(node.outputs[0].type.size, 1)
        dx = _spread_back(g, node, douts[0])
        return [g.emit("RealDiv", [dx, g.const(np.array(count, x.type.dtype.np),
                                                name="Default/reduce_count")])]


@op
class ReduceMax(OpDef):
    """The largest value along ``axis`` (MindSpore 2.10's nn.CrossEntropyLoss subtracts each
    row's maximum before the exponentials)."""

    attrs = {"axis": (), "keep_dims": False}

    def infer(ins, a):
        return [_reduced_type(ins[0], a)]

    def kernel(ins, outs, a, rt):
        np.max(ins[0], axis=_kernel_axes(ins[0], a), keepdims=bool(a["keep_dims"]),
               out=outs[0])

    def grad(g, node, douts):
        # MindSpore's bprop: dout spread over the positions equal to the maximum, split
        # evenly among ties: mask = Cast(Equal(x, y)); dx = dout / ReduceSum(mask) * mask.
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        axes = _kernel_axes(np.empty(x.type.shape), node.attrs)
        kept = tuple(1 if i in axes else d for i, d in enumerate(x.type.shape))
        y, dy = node.outputs[0], douts[0]
        if y.type.shape != kept:
            y = g.emit("Reshape", [y], shape=kept)
            dy = g.emit("Reshape", [dy], shape=kept)
        mask = g.emit("Cast", [g.emit("Equal", [x, y])], to=x.type.dtype.ms_type_id)
        count = g.emit("ReduceSum", [mask], axis=tuple(axes), keep_dims=True)
        return [g.emit("Mul", [g.emit("RealDiv", [dy, count]), mask])]


@op
class Tile(OpDef):
    """Repeats x ``multiples[i]`` times along axis i (len(multiples) >= rank; x is treated
    as having leading 1s)."""

    attrs = {"multiples": REQUIRED}

    def infer(ins, a):
        (x,) = ins
        mult = tuple(int(m) for m in a["multiples"])
        if len(mult) < len(x.shape) or min(mult, default=1) < 1:
            raise ValueError(f"multiples {list(mult)} must be positive and cover rank "
                             f"{len(x.shape)}")
        shape = (1,) * (len(mult) - len(x.shape)) + tuple(x.shape)
        return [TensorType(tuple(d * m for d, m in zip(shape, mult)), x.dtype)]

    def kernel(ins, outs, a, rt):
        mult = tuple(int(m) for m in a["multiples"])
        x = ins[0].reshape((1,) * (len(mult) - ins[0].ndim) + ins[0].shape)
        # A broadcast view of the tiles: (d0, m0, d1, m1...) -> copy into the output.
        view = np.broadcast_to(x.reshape(sum(((1, d) for d in x.shape), ())),
                               sum(((m, d) for m, d in zip(mult, x.shape)), ()))
        np.copyto(outs[0], view.reshape(outs[0].shape))

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        (dy,) = douts
        mult = tuple(int(m) for m in node.attrs["multiples"])
        shape = (1,) * (len(mult) - len(x.type.shape)) + tuple(x.type.shape)
        # Split each axis into (multiple, size), sum the multiples away.
        split = sum(((m, d) for m, d in zip(mult, shape)), ())
        d = g.emit("Reshape", [dy], shape=split)
        d = g.emit("ReduceSum", [d], axis=tuple(range(0, len(split), 2)), keep_dims=False)
        return [g.emit("Reshape", [d], shape=x.type.shape) if d.type.shape != x.type.shape
                else d]
