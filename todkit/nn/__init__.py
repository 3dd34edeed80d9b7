"""MindSpore's ``mindspore.nn`` names, implemented in ``todkit.frontend``."""

from todkit.frontend.cell import Cell, CellList, SequentialCell
from todkit.frontend.layers import (
                                    Conv2d,
                                    Dense,
                                    Flatten,
                                    MaxPool2d,
                                    ReLU,
                                    Sigmoid,
                                    Tanh,
                                    get_activation,
)
from todkit.frontend.losses import LossBase, SoftmaxCrossEntropyWithLogits
from todkit.frontend.optimizers import SGD, Adam, Momentum, Optimizer
from todkit.frontend.wrap import TrainOneStepCell, WithLossCell

__all__ = [
                                    "SGD",
                                    "Adam",
                                    "Cell",
                                    "CellList",
                                    "Conv2d",
                                    "Dense",
                                    "Flatten",
                                    "LossBase",
                                    "MaxPool2d",
                                    "Momentum",
                                    "Optimizer",
                                    "ReLU",
                                    "SequentialCell",
                                    "Sigmoid",
                                    "SoftmaxCrossEntropyWithLogits",
                                    "Tanh",
                                    "TrainOneStepCell",
                                    "WithLossCell",
                                    "get_activation",
]
