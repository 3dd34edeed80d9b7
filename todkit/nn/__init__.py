"""MindSpore's ``mindspore.nn`` names, implemented in ``todkit.frontend``."""

from todkit.frontend.activation import (
    ELU,
    GELU,
    HSigmoid,
    HSwish,
    LeakyReLU,
    LogSoftmax,
    ReLU6,
    SiLU,
    Softmax,
)
from todkit.frontend.cell import Cell, CellList, SequentialCell
from todkit.frontend.conv_transpose import Conv2dTranspose
from todkit.frontend.dropout import Dropout, Dropout2d
from todkit.frontend.embedding import Embedding
from todkit.frontend.group_norm import GroupNorm
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
from todkit.frontend.losses import (
    BCELoss,
    BCEWithLogitsLoss,
    CrossEntropyLoss,
    L1Loss,
    LossBase,
    MSELoss,
    NLLLoss,
    SmoothL1Loss,
    SoftmaxCrossEntropyWithLogits,
)
from todkit.frontend.more_activations import Mish, PReLU
from todkit.frontend.normalization import BatchNorm1d, BatchNorm2d, LayerNorm
from todkit.frontend.optimizers import SGD, Adam, AdamWeightDecay, Momentum, Optimizer
from todkit.frontend.pooling import AdaptiveAvgPool2d, AvgPool2d
from todkit.frontend.wrap import TrainOneStepCell, WithLossCell

__all__ = [
    "ELU",
    "GELU",
    "SGD",
    "Adam",
    "AdamWeightDecay",
    "AdaptiveAvgPool2d",
    "AvgPool2d",
    "BCELoss",
    "BCEWithLogitsLoss",
    "BatchNorm1d",
    "BatchNorm2d",
    "Cell",
    "CellList",
    "Conv2d",
    "Conv2dTranspose",
    "CrossEntropyLoss",
    "Dense",
    "Dropout",
    "Dropout2d",
    "Embedding",
    "Flatten",
    "GroupNorm",
    "HSigmoid",
    "HSwish",
    "L1Loss",
    "LayerNorm",
    "LeakyReLU",
    "LogSoftmax",
    "LossBase",
    "MSELoss",
    "MaxPool2d",
    "Mish",
    "Momentum",
    "NLLLoss",
    "Optimizer",
    "PReLU",
    "ReLU",
    "ReLU6",
    "SequentialCell",
    "SiLU",
    "Sigmoid",
    "SmoothL1Loss",
    "Softmax",
    "SoftmaxCrossEntropyWithLogits",
    "Tanh",
    "TrainOneStepCell",
    "WithLossCell",
    "get_activation",
]
