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


# -- padding, slicing and gathering (ResNet18's nn.Pad; a per-step learning-rate table) ------
def _pad_pairs(paddings, rank: int) -> list[tuple[int, int]]:
    """The flat (before_0, after_0, before_1, after_1, ...) attribute as per-axis pairs."""
    flat = [int(p) for p in paddings]
    if len(flat) != 2 * rank:
        raise ValueError(f"paddings has {len(flat)} values; rank {rank} needs {2 * rank}")
    if min(flat, default=0) < 0:
        raise ValueError(f"paddings {flat} must be >= 0")
    return list(zip(flat[0::2], flat[1::2]))


@op
class Pad(OpDef):
    """Zero padding. ``paddings`` is MindSpore's ((before, after) per axis) flattened to
    (b0, a0, b1, a1, ...), the int32 tensor Lite's PadFusion reads, so both codecs carry it
    as it is. The gradient is MindSpore 2.10's bprop: ``Slice(dout, begin=befores,
    size=x's shape)``."""

    attrs = {"paddings": REQUIRED}

    def infer(ins, a):
        (x,) = ins
        pairs = _pad_pairs(a["paddings"], len(x.shape))
        return [TensorType(tuple(d + b + e for d, (b, e) in zip(x.shape, pairs)), x.dtype)]

    def kernel(ins, outs, a, rt):
        x, y = ins[0], outs[0]
        pairs = _pad_pairs(a["paddings"], x.ndim)
        y.fill(0)
        y[tuple(slice(b, b + d) for d, (b, _) in zip(x.shape, pairs))] = x

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        pairs = _pad_pairs(node.attrs["paddings"], len(x.type.shape))
        return [g.emit("Slice", [douts[0]], begin=tuple(b for b, _ in pairs),
                       size=tuple(x.type.shape))]


def _slice_bounds(shape, begin, size) -> list[tuple[int, int]]:
    """(start, stop) per axis; a size of -1 runs to the end of the axis (MindSpore's Slice)."""
    begin, size = [int(b) for b in begin], [int(s) for s in size]
    if len(begin) != len(shape) or len(size) != len(shape):
        raise ValueError(f"begin {begin} and size {size} need {len(shape)} values each")
    bounds = []
    for d, b, s in zip(shape, begin, size):
        stop = d if s == -1 else b + s
        if not (0 <= b <= stop <= d) or s < -1:
            raise ValueError(f"slice begin {begin} size {size} is outside {list(shape)}")
        bounds.append((b, stop))
    return bounds


@op
class Slice(OpDef):
    """``x[begin : begin + size]`` per axis. Its gradient pads ``dout`` back with zeros."""

    attrs = {"begin": REQUIRED, "size": REQUIRED}

    def infer(ins, a):
        (x,) = ins
        bounds = _slice_bounds(x.shape, a["begin"], a["size"])
        return [TensorType(tuple(e - b for b, e in bounds), x.dtype)]

    def kernel(ins, outs, a, rt):
        bounds = _slice_bounds(ins[0].shape, a["begin"], a["size"])
        np.copyto(outs[0], ins[0][tuple(slice(b, e) for b, e in bounds)])

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        bounds = _slice_bounds(x.type.shape, node.attrs["begin"], node.attrs["size"])
        flat = tuple(v for d, (b, e) in zip(x.type.shape, bounds) for v in (b, d - e))
        return [g.emit("Pad", [douts[0]], paddings=flat)]


@op
class Gather(OpDef):
    """``params`` indexed by the integer ``indices`` along ``axis``: out shape is
    params.shape[:axis] + indices.shape + params.shape[axis + 1:]. MindSpore's optimizers read
    a per-step learning rate this way (Gather(learning_rate, global_step, 0)). An index
    outside [0, n) is an error, as in Lite's kernel. Only batch_dims 0 (Lite has no batch_dims).

    The gradient (for params, along axis 0) is MindSpore's: ``UnsortedSegmentSum(dout,
    indices, rows)`` (Lite has the kernel; opset/extra_layers.py); integer indices get none."""

    attrs = {"axis": 0, "batch_dims": 0}

    def infer(ins, a):
        params, indices = ins
        if indices.dtype.np.kind not in "iu":
            raise ValueError(f"indices must be integers, got {indices.dtype.name}")
        if int(a["batch_dims"]) != 0:
            raise ValueError("batch_dims other than 0 is not supported")
        nd = len(params.shape)
        axis = int(a["axis"])
        if not -nd <= axis < nd:
            raise ValueError(f"axis {axis} is out of range for rank {nd}")
        axis %= nd
        shape = params.shape[:axis] + tuple(indices.shape) + params.shape[axis + 1:]
        return [TensorType(shape, params.dtype)]

    def kernel(ins, outs, a, rt):
        params, indices = ins
        axis = int(a["axis"]) % params.ndim
        n = params.shape[axis]
        if indices.size and (indices.min() < 0 or indices.max() >= n):
            raise IndexError(f"Gather: indices {indices.ravel().tolist()} are out of range for "
                             f"{n} entries along axis {axis}")
        np.take(params, indices, axis=axis, out=outs[0])

    def grad(g, node, douts):
        params, indices = node.inputs
        if not g.wants(params):
            return [None, None]
        if int(node.attrs["axis"]) % len(params.type.shape) != 0:
            raise NotImplementedError("Gather's gradient is implemented along axis 0 only")
        # dout is indices.shape + params.shape[1:]: the ids lead it, as UnsortedSegmentSum
        # takes them (a 0-d index is made a 1-element axis first)
        indices_, dout = indices, douts[0]
        if not indices.type.shape:
            indices_ = g.emit("Reshape", [indices], shape=(1,))
            dout = g.emit("Reshape", [dout], shape=(1, *dout.type.shape))
        return [g.emit("UnsortedSegmentSum", [dout, indices_],
                       num_segments=params.type.shape[0]), None]
