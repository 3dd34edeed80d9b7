"""``nn.GroupNorm`` as MindSpore 2.10 defines it (mindspore/nn/layer/normalization.py):
``GroupNorm(num_groups, num_channels, eps=1e-05, affine=True, gamma_init='ones',
beta_init='zeros', dtype=float32)``, parameters ``gamma`` and ``beta`` of shape
(num_channels,), trainable when ``affine`` (MindSpore keeps them, frozen, otherwise, and still
passes them to the op). The layer is the GroupNorm primitive's first output (2.10's
``ops.group_norm``); its gradient is the op's rule (todkit/opset/group_norm.py), MindSpore's
GroupNormGrad.
"""

from __future__ import annotations

import numbers

from todkit.core import dtypes
from todkit.frontend.cell import Cell
from todkit.frontend.initializer import initializer
from todkit.frontend.parameter import Parameter
from todkit.frontend.primitives import Primitive


class _GroupNormOp(Primitive):
    """``GroupNorm(num_groups, epsilon)(x, gamma, beta)`` -> (y, mean, rstd)."""

    op = "GroupNorm"

    def __init__(self, num_groups, epsilon):
        super().__init__(num_groups=int(num_groups), epsilon=float(epsilon))


def _positive_int(v, what: str) -> int:
    if isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 1:
        raise ValueError(f"GroupNorm: {what} must be an int >= 1, got {v!r}")
    return int(v)


class GroupNorm(Cell):
    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, gamma_init="ones",
                 beta_init="zeros", dtype=dtypes.float32):
        super().__init__()
        self.num_groups = _positive_int(num_groups, "num_groups")
        self.num_channels = _positive_int(num_channels, "num_channels")
        if self.num_channels % self.num_groups:
            raise ValueError(f"GroupNorm: num_channels ({self.num_channels}) must be divisible "
                             f"by num_groups ({self.num_groups})")
        if not isinstance(eps, float):
            raise TypeError(f"GroupNorm: eps must be a float, got {eps!r}")
        if not isinstance(affine, bool):
            raise TypeError(f"GroupNorm: affine must be a bool, got {affine!r}")
        self.eps, self.affine = eps, affine
        self.gamma = Parameter(initializer(gamma_init, self.num_channels, dtype), name="gamma",
                               requires_grad=affine)
        self.beta = Parameter(initializer(beta_init, self.num_channels, dtype), name="beta",
                              requires_grad=affine)
        self.group_norm = _GroupNormOp(self.num_groups, self.eps)

    def construct(self, x):
        if len(x.shape) < 2 or x.shape[1] != self.num_channels:
            raise ValueError(f"GroupNorm: the input must have shape (N, {self.num_channels}, "
                             f"...), got {list(x.shape)}")
        return self.group_norm(x, self.gamma, self.beta)[0]

    def extend_repr(self) -> str:
        return (f"num_groups={self.num_groups}, num_channels={self.num_channels}, "
                f"eps={self.eps}, affine={self.affine}")
