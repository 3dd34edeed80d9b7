"""The MindSpore-compatible front end: tensors, parameters, cells, layers, losses,
optimizers, wrappers and the graph that export writes. ``todkit.nn``, ``todkit.ops.operations``,
``todkit.common.parameter`` and ``todkit.train.serialization`` re-export it under MindSpore's
module paths."""

from todkit.frontend.cell import Cell, CellList, SequentialCell
from todkit.frontend.export import export_graph, mindir_path
from todkit.frontend.initializer import initializer, set_seed
from todkit.frontend.layers import Conv2d, Dense, Flatten, MaxPool2d, ReLU, Sigmoid, Tanh
from todkit.frontend.losses import LossBase, SoftmaxCrossEntropyWithLogits
from todkit.frontend.optimizers import SGD, Adam, Momentum, Optimizer
from todkit.frontend.parameter import Parameter, ParameterTuple
from todkit.frontend.tensor import Tensor, TracedTensor
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
    "Parameter",
    "ParameterTuple",
    "ReLU",
    "SequentialCell",
    "Sigmoid",
    "SoftmaxCrossEntropyWithLogits",
    "Tanh",
    "Tensor",
    "TracedTensor",
    "TrainOneStepCell",
    "WithLossCell",
    "export_graph",
    "initializer",
    "mindir_path",
    "set_seed",
]
