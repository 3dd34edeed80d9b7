"""MindSpore's ``mindspore.ops``: ``from todkit.ops import operations as P``, and the same
primitives as ``ops.Reshape`` ... (MindSpore 2.x exposes them at both paths)."""

from todkit.ops import operations
from todkit.ops.operations import (
    Adam, Add, AddN, ApplyMomentum, Assign, AssignAdd, BiasAdd, Conv2D, Div, ExpandDims,
    Flatten, MatMul, MaxPool, Mul, Primitive, ReLU, RealDiv, Reshape, SGD, Shape, Sigmoid,
    SoftmaxCrossEntropyWithLogits, SparseSoftmaxCrossEntropyWithLogits, Sub, Tanh, Transpose,
)

__all__ = [
    "operations", "Adam", "Add", "AddN", "ApplyMomentum", "Assign", "AssignAdd", "BiasAdd",
    "Conv2D", "Div", "ExpandDims", "Flatten", "MatMul", "MaxPool", "Mul", "Primitive", "ReLU",
    "RealDiv", "Reshape", "SGD", "Shape", "Sigmoid", "SoftmaxCrossEntropyWithLogits",
    "SparseSoftmaxCrossEntropyWithLogits", "Sub", "Tanh", "Transpose",
]
