"""Layers with MindSpore 2.x's signatures, defaults and initializers: Dense, Conv2d,
MaxPool2d, ReLU, Sigmoid, Tanh, Flatten."""

from __future__ import annotations

import math
import numbers

from todkit.core import dtypes
from todkit.frontend import primitives as P
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
from todkit.frontend.cell import Cell
from todkit.frontend.initializer import HeUniform, Uniform, _fans, initializer
from todkit.frontend.parameter import Parameter


class ReLU(Cell):
    def __init__(self):
        super().__init__()
        self.relu = P.ReLU()

    def construct(self, x):
        return self.relu(x)


class Sigmoid(Cell):
    def __init__(self):
        super().__init__()
        self.sigmoid = P.Sigmoid()

    def construct(self, x):
        return self.sigmoid(x)


class Tanh(Cell):
    def __init__(self):
        super().__init__()
        self.tanh = P.Tanh()

    def construct(self, x):
        return self.tanh(x)


# MindSpore's ``nn.get_activation`` names for the activations todkit has.
_ACTIVATIONS = {"relu": ReLU, "relu6": ReLU6, "sigmoid": Sigmoid, "tanh": Tanh, "gelu": GELU,
                "hswish": HSwish, "softmax": Softmax, "logsoftmax": LogSoftmax, "elu": ELU,
                "leakyrelu": LeakyReLU, "hsigmoid": HSigmoid, "silu": SiLU}


def get_activation(name):
    """MindSpore's ``nn.get_activation`` for the activations todkit has."""
    if name is None:
        return None
    cls = _ACTIVATIONS.get(str(name).lower())
    if cls is None:
        raise NotImplementedError(f"activation {name!r} is not supported; known: "
                                  f"{sorted(_ACTIVATIONS)}")
    return cls()


class Flatten(Cell):
    """Flatten(start_dim=1, end_dim=-1): (N, ...) -> (N, prod(rest)), the IR ``Flatten``."""

    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        if (start_dim, end_dim) != (1, -1):
            raise NotImplementedError("Flatten supports start_dim=1, end_dim=-1 only")
        self.flatten = P.Flatten()

    def construct(self, x):
        return self.flatten(x)


class Dense(Cell):
    """y = activation(x @ weight.T + bias); weight [out, in].

    Defaults as MindSpore 2.x: weight HeUniform(negative_slope=sqrt(5)) (= U(+-1/sqrt(in))),
    bias U(+-1/sqrt(in))."""

    def __init__(self, in_channels, out_channels, weight_init=None, bias_init=None,
                 has_bias=True, activation=None, dtype=dtypes.float32):
        super().__init__()
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.has_bias = bool(has_bias)
        if weight_init is None:
            weight_init = HeUniform(math.sqrt(5))
        self.weight = Parameter(initializer(weight_init, [out_channels, in_channels], dtype),
                                name="weight")
        if self.has_bias:
            if bias_init is None:
                bias_init = Uniform(1 / math.sqrt(in_channels))
            self.bias = Parameter(initializer(bias_init, [out_channels], dtype), name="bias")
            self.bias_add = P.BiasAdd()
        self.matmul = P.MatMul(transpose_b=True)
        self.activation = (get_activation(activation) if isinstance(activation, str) or
                           activation is None else activation)
        self.activation_flag = self.activation is not None

    def construct(self, x):
        shape = x.shape
        if len(shape) != 2:
            x = P.Reshape()(x, (-1, shape[-1]))
        x = self.matmul(x, self.weight)
        if self.has_bias:
            x = self.bias_add(x, self.bias)
        if self.activation_flag:
            x = self.activation(x)
        if len(shape) != 2:
            x = P.Reshape()(x, tuple(shape[:-1]) + (self.out_channels,))
        return x

    def extend_repr(self) -> str:
        return f"input_channels={self.in_channels}, output_channels={self.out_channels}"


def _pair(v):
    return (int(v), int(v)) if isinstance(v, numbers.Integral) else tuple(int(d) for d in v)


def conv_parameters(cell, shape, out_channels, weight_init, bias_init, dtype) -> None:
    """A convolution layer's ``weight`` of ``shape`` (HeUniform(sqrt(5)) by default) and, when
    ``cell.has_bias``, its ``bias`` (U(+-1/sqrt(fan_in))) and BiasAdd, as MindSpore's _Conv."""
    if weight_init is None:
        weight_init = HeUniform(math.sqrt(5))
    cell.weight = Parameter(initializer(weight_init, shape, dtype), name="weight")
    if cell.has_bias:
        if bias_init is None:
            bias_init = Uniform(1 / math.sqrt(_fans(shape)[0]))
        cell.bias = Parameter(initializer(bias_init, [out_channels], dtype), name="bias")
        cell.bias_add = P.BiasAdd()


class Conv2d(Cell):
    """MindSpore 2.x ``nn.Conv2d``: pad_mode 'same' by default, no bias by default,
    weight [out, in/group, kh, kw] from HeUniform(sqrt(5)), bias U(+-1/sqrt(fan_in))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, pad_mode="same",
                 padding=0, dilation=1, group=1, has_bias=False, weight_init=None,
                 bias_init=None, data_format="NCHW", dtype=dtypes.float32):
        super().__init__()
        if in_channels % group or out_channels % group:
            raise ValueError(f"channels ({in_channels}, {out_channels}) must divide by group "
                             f"{group}")
        self.in_channels, self.out_channels = int(in_channels), int(out_channels)
        self.kernel_size, self.stride = _pair(kernel_size), _pair(stride)
        self.dilation, self.group = _pair(dilation), int(group)
        self.pad_mode, self.padding, self.has_bias = pad_mode, padding, bool(has_bias)
        conv_parameters(self, [out_channels, in_channels // group, *self.kernel_size],
                        out_channels, weight_init, bias_init, dtype)
        self.conv2d = P.Conv2D(out_channel=out_channels, kernel_size=self.kernel_size,
                               mode=1, pad_mode=pad_mode, pad=padding, stride=self.stride,
                               dilation=self.dilation, group=group, data_format=data_format)

    def construct(self, x):
        out = self.conv2d(x, self.weight)
        if self.has_bias:
            out = self.bias_add(out, self.bias)
        return out


class MaxPool2d(Cell):
    """MindSpore 2.x ``nn.MaxPool2d(kernel_size=1, stride=1, pad_mode='valid')``; the
    padding/dilation/return_indices/ceil_mode variant (MaxPoolWithArgmaxV2) is not supported."""

    def __init__(self, kernel_size=1, stride=1, pad_mode="valid", padding=0, dilation=1,
                 return_indices=False, ceil_mode=False, data_format="NCHW"):
        super().__init__()
        if padding != 0 or dilation != 1 or return_indices or ceil_mode:
            raise NotImplementedError("MaxPool2d with padding, dilation, return_indices or "
                                      "ceil_mode (MaxPoolWithArgmaxV2) is not supported")
        if pad_mode.lower() == "pad":
            raise NotImplementedError("MaxPool2d pad_mode='pad' is not supported")
        self.max_pool = P.MaxPool(kernel_size=kernel_size, strides=stride, pad_mode=pad_mode,
                                  data_format=data_format)

    def construct(self, x):
        return self.max_pool(x)
