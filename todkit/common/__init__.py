"""MindSpore's ``mindspore.common``: dtype, tensor, parameter, initializer."""

from todkit.core import dtypes as dtype
from todkit.frontend.initializer import set_seed
from todkit.frontend.parameter import Parameter, ParameterTuple
from todkit.frontend.tensor import Tensor

__all__ = ["Parameter", "ParameterTuple", "Tensor", "dtype", "set_seed"]
