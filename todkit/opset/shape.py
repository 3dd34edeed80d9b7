"""Layout ops that move no arithmetic: Reshape, Flatten, ExpandDims, Transpose, Squeeze."""



from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op


def _reshape_back(g, node, douts):
    """Gradient of any op that only changes the shape: Reshape back to the input's shape."""
    (dy,) = douts
    (x,) = node.inputs
    return [g.emit("Reshape", [dy], shape=x.type.shape) if g.wants(x) else None]


@op
class Reshape(OpDef):
    attrs = {"shape": REQUIRED}
    alias = {0: 0}  # the device runtime binds y as a view of x (no copy)

    def infer(ins, a):
        (x,) = ins
        shape = [int(d) for d in a["shape"]]
        size = x.size
        if shape.count(-1) > 1:
            raise ValueError(f"shape {shape} has more than one -1")
        if any(d < -1 for d in shape):
            raise ValueError(f"shape {shape} has a negative dimension")
        if -1 in shape:
            known = int(np.prod([d for d in shape if d != -1]))
            if known == 0 or size % known:
                raise ValueError(f"cannot reshape {list(x.shape)} to {shape}")
            shape[shape.index(-1)] = size // known
        if int(np.prod(shape)) != size:
            raise ValueError(f"cannot reshape {list(x.shape)} ({size} elements) to {shape}")
        return [TensorType(tuple(shape), x.dtype)]

    def kernel(ins, outs, a, rt):
        np.copyto(outs[0], ins[0].reshape(outs[0].shape))

    grad = _reshape_back


@op
class Flatten(OpDef):
    """(N, ...) -> (N, prod(...))."""

    alias = {0: 0}

    def infer(ins, a):
        (x,) = ins
        if len(x.shape) < 1:
            raise ValueError("Flatten needs an input of rank >= 1")
        return [TensorType((x.shape[0], int(np.prod(x.shape[1:]))), x.dtype)]

    def kernel(ins, outs, a, rt):
        np.copyto(outs[0], ins[0].reshape(outs[0].shape))

    grad = _reshape_back


@op
class ExpandDims(OpDef):
    attrs = {"axis": REQUIRED}
    alias = {0: 0}

    def infer(ins, a):
        (x,) = ins
        nd = len(x.shape)
        axis = int(a["axis"])
        if not -nd - 1 <= axis <= nd:
            raise ValueError(f"axis {axis} is out of range for rank {nd}")
        if axis < 0:
            axis += nd + 1
        return [TensorType(x.shape[:axis] + (1,) + x.shape[axis:], x.dtype)]

    def kernel(ins, outs, a, rt):
        np.copyto(outs[0], ins[0].reshape(outs[0].shape))

    grad = _reshape_back


@op
class Transpose(OpDef):
    attrs = {"perm": REQUIRED}

    def infer(ins, a):
        (x,) = ins
        perm = tuple(int(p) for p in a["perm"])
        if sorted(perm) != list(range(len(x.shape))):
            raise ValueError(f"perm {list(perm)} is not a permutation of {len(x.shape)} axes")
        return [TensorType(tuple(x.shape[p] for p in perm), x.dtype)]

    def kernel(ins, outs, a, rt):
        np.copyto(outs[0], ins[0].transpose(tuple(a["perm"])))

    def grad(g, node, douts):
        (dy,) = douts
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        inverse = tuple(int(i) for i in np.argsort(node.attrs["perm"]))
        return [g.emit("Transpose", [dy], perm=inverse)]


@op
class Squeeze(OpDef):
    """Removes the listed size-1 axes (every size-1 axis when ``axis`` is empty)."""

    attrs = {"axis": ()}
    alias = {0: 0}

    def infer(ins, a):
        (x,) = ins
        nd = len(x.shape)
        axis = (a["axis"],) if isinstance(a["axis"], (int, np.integer)) else tuple(a["axis"])
        if not axis:
            drop = {i for i, d in enumerate(x.shape) if d == 1}
        else:
            if any(not -nd <= int(v) < nd for v in axis):
                raise ValueError(f"axis {list(axis)} is out of range for rank {nd}")
            drop = {int(v) % nd for v in axis}
            if any(x.shape[i] != 1 for i in drop):
                raise ValueError(f"cannot squeeze axes {sorted(drop)} of {list(x.shape)}")
        return [TensorType(tuple(d for i, d in enumerate(x.shape) if i not in drop), x.dtype)]

    def kernel(ins, outs, a, rt):
        np.copyto(outs[0], ins[0].reshape(outs[0].shape))

    grad = _reshape_back
