"""nn.PReLU and nn.Mish with MindSpore 2.10's signatures and parameter names, and the
``PReLU`` / ``Softplus`` primitives they use (todkit/opset/more_activations.py).

- ``PReLU(channel=1, w=0.25)``: one learnable slope, or one per channel (axis 1 of the input);
  ``w`` a float (every slope), a list of ``channel`` floats or a float Tensor of shape
  (channel,). The Parameter is the attribute ``w`` (MindSpore creates it as ``Parameter(w,
  name='a')``, so it is named ``<cell path>.w`` inside a net, ``a`` alone). 2.10's graph is
  the PReLU primitive and, as its gradient, PReLUGrad.
- ``Mish()``: x * tanh(softplus(x)). MindSpore exports a Mish primitive, which Lite lacks and
  todkit reads as these three ops (formats/mindir/lowered.LOWERED); built from them here, its
  gradient is the one 2.10 exports (Softplus, Tanh, TanhGrad, SoftplusGrad as dy * sigmoid).
"""

from __future__ import annotations

import numbers

import numpy as np

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.parameter import Parameter
from todkit.frontend.primitives import _NoAttrs
from todkit.frontend.tensor import Tensor


class PReLUPrim(_NoAttrs):
    """``ops.PReLU()(x, weight)``."""

    op = "PReLU"


class Softplus(_NoAttrs):
    """``ops.Softplus()(x)`` = log(1 + exp(x))."""


def _slopes(channel, w) -> np.ndarray:
    """MindSpore's checks of nn.PReLU's ``w``, and the float32 slopes it makes of it."""
    if isinstance(w, (float, np.float32)):
        return np.full((channel,), w, np.float32)
    if isinstance(w, list):
        if len(w) != channel:
            raise ValueError(f"PReLU: the length of 'w' must be equal to the 'channel' when "
                             f"'w' is a list, got {len(w)} for channel {channel}")
        if not all(isinstance(v, (float, np.float32)) for v in w):
            raise ValueError(f"PReLU: all elements of 'w' must be float, got {w!r}")
        return np.array(w, np.float32)
    if isinstance(w, Tensor):
        arr = w.asnumpy()
        if arr.dtype not in (np.float16, np.float32):
            raise ValueError(f"PReLU: the dtype of 'w' must be float16 or float32, got "
                             f"{arr.dtype}")
        if arr.shape != (channel,):
            raise ValueError(f"PReLU: 'w' must have shape ({channel},), got {arr.shape}")
        return arr.copy()
    raise TypeError(f"PReLU: 'w' must be a float, a list or a Tensor, got {type(w).__name__}")


class PReLU(Cell):
    def __init__(self, channel=1, w=0.25):
        super().__init__()
        if isinstance(channel, bool) or not isinstance(channel, numbers.Integral) \
                or channel < 1:
            raise ValueError(f"PReLU: 'channel' must be a positive int, got {channel!r}")
        self.channel = int(channel)
        self.w = Parameter(_slopes(self.channel, w), name="a")
        self.prelu = PReLUPrim()

    def construct(self, x):
        return self.prelu(x, self.w)

    def extend_repr(self) -> str:
        return f"channel={self.channel}"


class Mish(Cell):
    def __init__(self):
        super().__init__()
        self.softplus = Softplus()
        self.tanh = P.Tanh()
        self.mul = P.Mul()

    def construct(self, x):
        return self.mul(x, self.tanh(self.softplus(x)))
