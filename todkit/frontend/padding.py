"""``nn.Pad(paddings, mode='CONSTANT')``: zero padding with the ``Pad`` primitive, as MindSpore
builds it (ResNet18's stem pads before its 'valid' max pool). Only CONSTANT mode."""

from __future__ import annotations

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell


class Pad(Cell):
    def __init__(self, paddings, mode="CONSTANT"):
        super().__init__()
        if mode.upper() != "CONSTANT":
            raise NotImplementedError(f"Pad: mode {mode!r} is not supported; only 'CONSTANT'")
        self.paddings = tuple((int(a), int(b)) for a, b in paddings)
        self.pad = P.Pad(self.paddings)

    def construct(self, x):
        if len(x.shape) != len(self.paddings):
            raise ValueError(f"Pad: {len(self.paddings)} (before, after) pairs for an input of "
                             f"rank {len(x.shape)}")
        return self.pad(x)
