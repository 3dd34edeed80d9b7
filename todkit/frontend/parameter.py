"""``Parameter`` (a named, trainable Tensor whose array is updated in place) and
``ParameterTuple``.

A Parameter keeps one array for its whole life: traced graphs reference that array directly as
a ``param`` constant, so optimizer kernels running in a graph update the Parameter itself.
``set_data`` therefore copies into the array when the shape and dtype allow.
"""

from __future__ import annotations

import numpy as np

from todkit.frontend.tensor import Tensor, TracedTensor

# MindSpore's name for a Parameter created without one; Cell attributes rename it.
PARAMETER_NAME_DEFAULT = "Parameter"


class Parameter(Tensor):
    """``Parameter(default_input, name=None, requires_grad=True)``."""

    def __init__(self, default_input, name=None, requires_grad=True, layerwise_parallel=False,
                 parallel_optimizer=True):
        if isinstance(default_input, TracedTensor):
            raise TypeError("a Parameter cannot be created from a traced tensor")
        if isinstance(default_input, Tensor):
            default_input = default_input.asnumpy()
        super().__init__(default_input)
        self.name = name or PARAMETER_NAME_DEFAULT
        self.requires_grad = bool(requires_grad)

    @property
    def data(self) -> Parameter:
        """MindSpore's ``Parameter.data`` is the parameter itself."""
        return self

    def set_data(self, data) -> Parameter:
        arr = data.asnumpy() if isinstance(data, Tensor) else np.asarray(data)
        if arr.shape == self._data.shape:
            np.copyto(self._data, arr, casting="unsafe")
        else:
            # A new array: graphs traced before hold the old one and are traced again.
            self._data = np.array(arr, dtype=self._data.dtype, order="C")
        return self

    def clone(self, init="same") -> Parameter:
        """A new Parameter of the same name and shape, holding a copy or ``init``."""
        if init == "same":
            data = self.asnumpy()
        else:
            from todkit.frontend.initializer import initializer

            data = initializer(init, self.shape, self.dtype)
        return Parameter(data, name=self.name, requires_grad=self.requires_grad)

    def __repr__(self) -> str:
        return (f"Parameter (name={self.name}, shape={self.shape}, dtype={self.dtype.name}, "
                f"requires_grad={self.requires_grad})")

    __hash__ = object.__hash__


class ParameterTuple(tuple):
    """A tuple of Parameters; ``clone(prefix, init)`` makes optimizer slots
    (``moment1.fc.weight`` ...)."""

    def __new__(cls, iterable=()):
        items = tuple(iterable)
        for p in items:
            if not isinstance(p, Parameter):
                raise TypeError(f"ParameterTuple holds Parameters, got {type(p).__name__}")
        return super().__new__(cls, items)

    def clone(self, prefix: str, init="same") -> ParameterTuple:
        out = []
        for p in self:
            c = p.clone(init)
            c.name = f"{prefix}.{p.name}"
            out.append(c)
        return ParameterTuple(out)
