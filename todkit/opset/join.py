"""Joining and splitting along an axis: Concat and SplitWithSize.

Concat's gradient is MindSpore 2.10's bprop (checked on tests/fixtures/mindir_forms/
concat.mindir): one ``SplitWithSize(dout, split_size, dim)`` giving every input's slice at once
(MindSpore Lite writes it as ``Split{size_splits, axis}``).
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op


def _axis(axis, ndim: int) -> int:
    axis = int(axis)
    if not -ndim <= axis < ndim:
        raise ValueError(f"axis {axis} is out of range for rank {ndim}")
    return axis % ndim


@op
class Concat(OpDef):
    """x1 ... xn, equal except along ``axis`` -> their concatenation."""

    attrs = {"axis": 0}

    def infer(ins, a):
        if not ins:
            raise ValueError("Concat needs at least one input")
        first = ins[0]
        axis = _axis(a["axis"], len(first.shape))
        for t in ins[1:]:
            if t.dtype != first.dtype or len(t.shape) != len(first.shape) or any(
                    p != q for k, (p, q) in enumerate(zip(t.shape, first.shape)) if k != axis):
                raise ValueError(f"inputs {first} and {t} differ outside axis {axis}")
        size = sum(t.shape[axis] for t in ins)
        return [TensorType(first.shape[:axis] + (size,) + first.shape[axis + 1:], first.dtype)]

    def kernel(ins, outs, a, rt):
        np.concatenate(ins, axis=_axis(a["axis"], ins[0].ndim), out=outs[0])

    def grad(g, node, douts):
        wanted = [g.wants(v) for v in node.inputs]
        if not any(wanted):
            return [None] * len(node.inputs)
        axis = _axis(node.attrs["axis"], len(node.inputs[0].type.shape))
        sizes = tuple(v.type.shape[axis] for v in node.inputs)
        parts = g.emit("SplitWithSize", [douts[0]], split_size=sizes, dim=axis)
        parts = [parts] if len(node.inputs) == 1 else list(parts)
        return [p if w else None for p, w in zip(parts, wanted)]


@op
class SplitWithSize(OpDef):
    """x -> pieces of ``split_size[i]`` along ``dim`` (the sizes add up to x's extent)."""

    attrs = {"split_size": REQUIRED, "dim": 0}

    def infer(ins, a):
        (x,) = ins
        dim = _axis(a["dim"], len(x.shape))
        sizes = tuple(int(s) for s in a["split_size"])
        if not sizes or min(sizes) < 0 or sum(sizes) != x.shape[dim]:
            raise ValueError(f"split_size {list(sizes)} must add up to {x.shape[dim]}")
        return [TensorType(x.shape[:dim] + (s,) + x.shape[dim + 1:], x.dtype) for s in sizes]

    def kernel(ins, outs, a, rt):
        x = ins[0]
        dim = _axis(a["dim"], x.ndim)
        start = 0
        for out in outs:
            n = out.shape[dim]
            np.copyto(out, np.take(x, np.arange(start, start + n), axis=dim))
            start += n

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        parts = []
        for d, v in zip(douts, node.outputs):  # a piece nobody differentiates adds zeros
            parts.append(d if d is not None else g.const(np.zeros(v.type.shape, v.type.dtype.np),
                                                         name="Default/zeros"))
        return [g.emit("Concat", parts, axis=node.attrs["dim"])]
