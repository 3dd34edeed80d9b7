"""Activation layers beyond ReLU/Sigmoid/Tanh (layers.py), as in MindSpore 2.x's
nn/layer/activation.py: ReLU6, GELU (tanh approximation, ``GeLU``), HSwish, HSigmoid, SiLU,
ELU (``Elu``),
LeakyReLU (Maximum of x and alpha * x, as MindSpore builds it), Softmax, LogSoftmax."""

from __future__ import annotations

from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell


class ReLU6(Cell):
    def __init__(self):
        super().__init__()
        self.relu6 = P.ReLU6()

    def construct(self, x):
        return self.relu6(x)


class GELU(Cell):
    """``GELU(approximate=True)``: MindSpore's default is the tanh approximation, the ``GeLU``
    primitive; the exact (erf) form needs an Erf op todkit does not have."""

    def __init__(self, approximate=True):
        super().__init__()
        if not approximate:
            raise NotImplementedError("GELU(approximate=False) needs Erf, which todkit does not "
                                      "support; use the default approximate=True")
        self.approximate = True
        self.gelu = P.GeLU()

    def construct(self, x):
        return self.gelu(x)


class HSwish(Cell):
    def __init__(self):
        super().__init__()
        self.hswish = P.HSwish()

    def construct(self, x):
        return self.hswish(x)


class HSigmoid(Cell):
    def __init__(self):
        super().__init__()
        self.hsigmoid = P.HSigmoid()

    def construct(self, x):
        return self.hsigmoid(x)


class SiLU(Cell):
    """x * sigmoid(x), MindSpore's ``SiLU`` primitive (Lite's swish activation)."""

    def __init__(self):
        super().__init__()
        self.silu = P.SiLU()

    def construct(self, x):
        return self.silu(x)


class ELU(Cell):
    def __init__(self, alpha=1.0):
        super().__init__()
        self.alpha = float(alpha)
        self.elu = P.Elu(self.alpha)

    def construct(self, x):
        return self.elu(x)


class LeakyReLU(Cell):
    """max(x, alpha * x) for alpha <= 1, min(x, alpha * x) above (MindSpore's own form)."""

    def __init__(self, alpha=0.2):
        super().__init__()
        self.alpha = float(alpha)
        self.pick = P.Maximum() if self.alpha <= 1 else P.Minimum()
        self.mul = P.Mul()

    def construct(self, x):
        return self.pick(self.mul(self.alpha, x), x)


class Softmax(Cell):
    def __init__(self, axis=-1):
        super().__init__()
        self.softmax = P.Softmax(axis)

    def construct(self, x):
        return self.softmax(x)


class LogSoftmax(Cell):
    def __init__(self, axis=-1):
        super().__init__()
        self.log_softmax = P.LogSoftmax(axis)

    def construct(self, x):
        return self.log_softmax(x)
