"""GatherD: elements picked along one axis by an index tensor of the output's shape
(``np.take_along_axis``). MindSpore 2.10's nn.CrossEntropyLoss and nn.NLLLoss gather each
row's target log-probability with it; their gradient, GatherDGradV2, is read as OneHot /
Mul / ReduceSum (formats/mindir/optable.py: Lite has GatherD but no gradient kernel for it).
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op


def gather_d_axis(rank: int, dim) -> int:
    dim = int(dim)
    if not -rank <= dim < rank:
        raise ValueError(f"dim {dim} is out of range for rank {rank}")
    return dim % rank


@op
class GatherD(OpDef):
    """(x, index) -> out[..., i, ...] = x[..., index[..., i, ...], ...] along ``dim``; index
    has x's rank, its extents at most x's off ``dim``; out has index's shape and x's dtype."""

    attrs = {"dim": 0}

    def infer(ins, a):
        x, index = ins
        if index.dtype.np.kind not in "iu":
            raise ValueError(f"index must be integers, got {index.dtype.name}")
        if len(index.shape) != len(x.shape):
            raise ValueError(f"index rank {len(index.shape)} differs from x's {len(x.shape)}")
        d = gather_d_axis(len(x.shape), a["dim"])
        if any(i > n for k, (i, n) in enumerate(zip(index.shape, x.shape)) if k != d):
            raise ValueError(f"index {list(index.shape)} is larger than x {list(x.shape)} off "
                             f"dim {d}")
        return [TensorType(tuple(index.shape), x.dtype)]

    def kernel(ins, outs, a, rt):
        x, index = ins
        d = gather_d_axis(x.ndim, a["dim"])
        n = x.shape[d]
        if index.size and (index.min() < -n or index.max() >= n):
            raise IndexError(f"GatherD: index values {int(index.min())}..{int(index.max())} "
                             f"are out of range for {n} entries along dim {d}")
        sub = x[tuple(slice(0, e) if k != d else slice(None) for k, e in enumerate(index.shape))]
        outs[0][...] = np.take_along_axis(sub, index.astype(np.intp) % n, axis=d)
