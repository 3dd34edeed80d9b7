"""Changing what the numbers mean: Cast (dtype) and OneHot (class index -> one-hot rows).

Cast's ``to`` is MindSpore's ``TypeId`` int (kNumberTypeFloat32 = 43 ...), the number both file
formats store: MINDIR as Cast's attribute-input, ``.ms`` as Cast's constant second input. Its
gradient casts back to the input's type, as MindSpore 2.10's bprop does
(tests/fixtures/mindir_forms/cast.mindir).
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op


def cast_target(to) -> dtypes.DType:
    """The DType named by a TypeId int (the canonical form) or, leniently, a dtype name."""
    dt = dtypes.from_ms(int(to)) if isinstance(to, (int, np.integer)) else dtypes.as_dtype(to)
    if dt is None:
        raise ValueError(f"Cast to TypeId {to} is not supported")
    return dt


@op
class Cast(OpDef):
    attrs = {"to": REQUIRED}

    def infer(ins, a):
        (x,) = ins
        return [TensorType(x.shape, cast_target(a["to"]))]

    def kernel(ins, outs, a, rt):
        # Float to int truncates toward zero, as MindSpore's CPU Cast does (NumPy's default).
        np.copyto(outs[0], ins[0], casting="unsafe")

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x) or x.type.dtype.np.kind != "f":
            return [None]
        return [g.emit("Cast", [douts[0]], to=x.type.dtype.ms_type_id)]


@op
class OneHot(OpDef):
    """(indices int [N...], on_value, off_value scalars) -> on where the class is the index,
    off elsewhere; the new axis of size ``depth`` at ``axis`` (-1: last). Indices outside
    [0, depth) give a row of off_value, as MindSpore's kernel does."""

    attrs = {"depth": REQUIRED, "axis": -1}

    def infer(ins, a):
        idx, on, off = ins
        if idx.dtype.np.kind not in "iu":
            raise ValueError(f"indices must be integer, got {idx.dtype.name}")
        if on.size != 1 or off.size != 1 or on.dtype != off.dtype:
            raise ValueError(f"on_value {on} and off_value {off} must be scalars of one dtype")
        depth, nd = int(a["depth"]), len(idx.shape)
        axis = int(a["axis"])
        if depth < 0 or not -1 <= axis <= nd:
            raise ValueError(f"depth {depth} / axis {axis} out of range for rank {nd}")
        axis = nd if axis == -1 else axis
        return [TensorType(idx.shape[:axis] + (depth,) + idx.shape[axis:], on.dtype)]

    def kernel(ins, outs, a, rt):
        idx, on, off = ins
        out = outs[0]
        depth, nd = int(a["depth"]), idx.ndim
        axis = nd if int(a["axis"]) == -1 else int(a["axis"])
        classes = np.arange(depth).reshape((depth,) + (1,) * (nd - axis))
        hit = np.expand_dims(idx, axis) == classes
        np.copyto(out, np.where(hit, on.reshape(()), off.reshape(())))
