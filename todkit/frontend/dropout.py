"""``nn.Dropout(keep_prob=0.5, p=None)`` as MindSpore 2.x: ``p`` (drop probability) wins over
the deprecated ``keep_prob``; the layer is the identity unless the cell is in training mode,
and then it is the ``Dropout`` primitive (output 0; output 1 is the mask). ``nn.Dropout2d(p)``
drops whole channels of an NCHW input, the ``Dropout2D`` primitive, the same way."""

from __future__ import annotations

import numbers

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell


class Dropout(Cell):
    def __init__(self, keep_prob=0.5, p=None, dtype=None):
        super().__init__()
        if p is None:
            if not isinstance(keep_prob, float) or not 0 < keep_prob <= 1:
                raise ValueError(f"Dropout: keep_prob must be a float in (0, 1], got {keep_prob!r}")
            self.dropout = P.Dropout(keep_prob)
        else:
            if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
                raise ValueError(f"Dropout: p must be a number in [0, 1), got {p!r}")
            self.dropout = P.Dropout(1.0 - p)
        self.p, self.keep_prob = p, keep_prob

    def construct(self, x):
        if not self.training or self.keep_prob == 1 or self.p == 0:
            return x
        return self.dropout(x)[0]

    def extend_repr(self) -> str:
        return f"keep_prob={self.keep_prob}" if self.p is None else f"p={self.p}"


class Dropout2d(Cell):
    def __init__(self, p=0.5):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, numbers.Real) or not 0 <= p < 1:
            raise ValueError(f"Dropout2d: p must be a number in [0, 1), got {p!r}")
        self.p = float(p)
        self.dropout = P.Dropout2D(1.0 - self.p)

    def construct(self, x):
        if len(x.shape) != 4:
            raise ValueError(f"Dropout2d: the input must be NCHW 4-D, got {list(x.shape)}")
        if not self.training or self.p == 0:
            return x
        return self.dropout(x)[0]

    def extend_repr(self) -> str:
        return f"p={self.p}"
