"""``WithLossCell`` and ``TrainOneStepCell`` (MindSpore's nn/wrap/cell_wrapper.py).

Calling a TrainOneStepCell runs one training step: the first call per input signature traces
forward, loss, backward (``todkit.autodiff``) and the optimizer into one IR graph; every call
then runs that graph with the reference interpreter. The graph's param constants hold the
Parameters' own arrays, so the optimizer ops update the network in place, and the call returns
the loss, as in MindSpore.
"""

from __future__ import annotations

from todkit.frontend.cell import Cell
from todkit.frontend.graphs import gradients
from todkit.frontend.optimizers import Optimizer


class WithLossCell(Cell):
    def __init__(self, backbone, loss_fn):
        super().__init__(auto_prefix=False)
        self._backbone = backbone
        self._loss_fn = loss_fn

    def construct(self, data, label):
        out = self._backbone(data)
        return self._loss_fn(out, label)

    @property
    def backbone_network(self):
        return self._backbone


class TrainOneStepCell(Cell):
    """``TrainOneStepCell(network, optimizer, sens=1.0)``: ``network`` returns the loss;
    the gradient is that of ``sum(sens * loss)`` (so with reduction 'none' it is the sum of
    the per-sample gradients, as in MindSpore)."""

    _compile_on_call = True
    _builds_train_graph = True

    def __init__(self, network, optimizer, sens=1.0):
        super().__init__(auto_prefix=False)
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"optimizer must be a todkit Optimizer, got "
                            f"{type(optimizer).__name__}")
        self.network = network
        self.network.set_grad()
        self.optimizer = optimizer
        self.weights = self.optimizer.parameters
        self.sens = float(sens)

    def construct(self, *inputs):
        loss = self.network(*inputs)
        grads = gradients(loss, self.weights, self.sens)
        self.optimizer(grads)
        return loss
