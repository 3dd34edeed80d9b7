"""``Tensor``: a NumPy array with a MindSpore dtype, and the Python operators on it.

Operators dispatch to primitives (``x + y`` is ``Add``), so the same expression runs eagerly on
arrays or, while a graph is being traced, adds IR nodes. A tensor produced during tracing is a
``TracedTensor``: it carries an IR ``Value`` and no data, which keeps the trace apart from eager
values (a traced tensor cannot be read, as in MindSpore's graph mode).
"""

from __future__ import annotations

import numbers

import numpy as np

from todkit.core import dtypes
from todkit.core.dtypes import DType


def _default_array(data) -> np.ndarray:
    """NumPy arrays keep their dtype; Python floats become float32 and ints int64, as in
    MindSpore's ``Tensor(1.0)`` / ``Tensor([1, 2])``."""
    if isinstance(data, np.ndarray):
        return data
    if isinstance(data, np.generic):
        return np.asarray(data)
    arr = np.asarray(data)
    if arr.dtype == np.float64:
        return arr.astype(np.float32)
    return arr


class Tensor:
    """MindSpore-style tensor: ``Tensor(input_data, dtype=None)``; ``asnumpy()`` gives a copy."""

    __array_priority__ = 100  # so ndarray <op> Tensor defers to Tensor's reflected operators

    def __init__(self, input_data=None, dtype=None, shape=None, init=None):
        if init is not None:
            raise NotImplementedError("Tensor(init=...) lazy initialization is not supported; "
                                      "use todkit.common.initializer.initializer(...)")
        if input_data is None:
            if shape is None or dtype is None:
                raise ValueError("Tensor() needs input_data, or shape and dtype")
            input_data = np.zeros(shape, dtypes.as_dtype(dtype).np)
        if isinstance(input_data, Tensor):
            input_data = input_data.asnumpy()
        arr = _default_array(input_data)
        if dtype is not None:
            arr = arr.astype(dtypes.as_dtype(dtype).np, copy=False)
        try:
            dtypes.from_numpy(arr.dtype)
        except KeyError:
            raise TypeError(f"todkit has no dtype for NumPy {arr.dtype}") from None
        # Own the memory, C-ordered and writeable: in-place kernels and graphs share it.
        self._data = np.array(arr, order="C", copy=True)

    # -- data -------------------------------------------------------------------------
    @property
    def dtype(self) -> DType:
        return dtypes.from_numpy(self._data.dtype)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self._data.shape)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def asnumpy(self) -> np.ndarray:
        return self._data.copy()

    def item(self):
        return self.asnumpy().item()

    def __array__(self, dtype=None, copy=None):
        arr = self.asnumpy()
        return arr if dtype is None else arr.astype(dtype)

    def astype(self, dtype) -> Tensor:
        return Tensor(self.asnumpy(), dtype)

    def reshape(self, *shape) -> Tensor:
        from todkit.frontend import primitives as P

        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return P.Reshape()(self, shape)

    def __len__(self) -> int:
        if not self.shape:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __repr__(self) -> str:
        return f"Tensor(shape={list(self.shape)}, dtype={self.dtype.name}, value=\n{self._data})"

    # -- operators (MindSpore: Tensor.__add__ -> ops.add, ...) -------------------------
    def _binary(self, op: str, other, reflected: bool = False):
        from todkit.frontend import primitives as P

        if not isinstance(other, (Tensor, numbers.Number, np.ndarray, np.generic)):
            return NotImplemented
        prim = getattr(P, op)()
        return prim(other, self) if reflected else prim(self, other)

    def __add__(self, o):
        return self._binary("Add", o)

    def __radd__(self, o):
        return self._binary("Add", o, True)

    def __sub__(self, o):
        return self._binary("Sub", o)

    def __rsub__(self, o):
        return self._binary("Sub", o, True)

    def __mul__(self, o):
        return self._binary("Mul", o)

    def __rmul__(self, o):
        return self._binary("Mul", o, True)

    def __truediv__(self, o):
        return self._binary("RealDiv", o)

    def __rtruediv__(self, o):
        return self._binary("RealDiv", o, True)

    def __matmul__(self, o):
        return self._binary("MatMul", o)

    def __rmatmul__(self, o):
        return self._binary("MatMul", o, True)

    def __neg__(self):
        return self._binary("Mul", -1)

    def __pos__(self):
        return self

    __hash__ = object.__hash__


def named_constant(value, dtype, name: str) -> Tensor:
    """A Tensor that becomes a graph constant called ``name`` (MindSpore names the Adam
    constants ``beta1``, ``beta2``, ``eps`` after the Python variables)."""
    t = Tensor(value, dtype)
    t.const_name = name
    return t


class TracedTensor(Tensor):
    """A tensor inside a graph being traced: an IR ``Value`` (shape and dtype, no data)."""

    def __init__(self, value):
        self.value = value
        self._data = None

    @property
    def dtype(self) -> DType:
        return self.value.type.dtype

    @property
    def shape(self) -> tuple[int, ...]:
        return self.value.type.shape

    def asnumpy(self) -> np.ndarray:
        raise RuntimeError(f"tensor {self.value.name!r} has no value while a graph is traced "
                           "(graph mode): it is computed when the graph runs")

    def astype(self, dtype):
        raise NotImplementedError("Cast is not in the IR op vocabulary yet")

    def __repr__(self) -> str:
        return f"TracedTensor({self.value.name}: {self.value.type})"
