"""Tracing a Cell into the IR, as MindSpore compiles a ``construct`` in graph mode.

While a ``Tracer`` is active, primitive calls add IR nodes (``todkit.opset.emit``) named
``<scope>/<Op>-op<k>``, where the scope is the path of Cell attributes from the root
(``Default/network-WithLossCell/_backbone-MyNet/fc-Dense``). Inputs are converted once per
trace: a traced tensor is its Value; a Parameter becomes a ``param`` constant named by the
parameter and holding the Parameter's own array (so in-place updates land in the Parameter);
any other tensor or Python number becomes a plain constant.
"""

from __future__ import annotations

import contextlib
import numbers

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import Graph, Value
from todkit.opset.build import emit

_active: Tracer | None = None

ROOT_SCOPE = "Default"


def active() -> Tracer | None:
    """The tracer primitive calls should record into, or None (eager)."""
    return _active


class Tracer:
    def __init__(self, graph: Graph, root_cell=None):
        self.graph = graph
        self.scope = ROOT_SCOPE
        self._cell_scopes: dict[int, str] = {}
        self._values: dict[int, Value] = {}
        self._keep: list = []  # objects whose id() is a key above stay alive for the trace
        self.params: list = []  # (Parameter, Value) pairs bound in this graph
        if root_cell is not None:
            self._name_scopes(root_cell, ROOT_SCOPE)

    def _name_scopes(self, cell, scope: str) -> None:
        """A cell's scope is its parent's plus ``<attribute>-<ClassName>``, first path wins."""
        if id(cell) in self._cell_scopes:
            return
        self._cell_scopes[id(cell)] = scope
        for name, child in cell.name_cells().items():
            self._name_scopes(child, f"{scope}/{name}-{type(child).__name__}")

    @contextlib.contextmanager
    def cell_scope(self, cell):
        scope = self._cell_scopes.get(id(cell))
        if scope is None:  # a cell that is no attribute of the traced tree
            scope = f"{self.scope}/{type(cell).__name__}"
        saved, self.scope = self.scope, scope
        try:
            yield
        finally:
            self.scope = saved

    # -- values -------------------------------------------------------------------------
    def value_of(self, x, like: Value | None = None) -> Value:
        """The IR value for a tensor, Parameter, array or Python number (numbers take the
        dtype of ``like``, else float32 / int32)."""
        from todkit.frontend.parameter import Parameter
        from todkit.frontend.tensor import Tensor, TracedTensor

        if isinstance(x, TracedTensor):
            return x.value
        key = id(x)
        if key in self._values:
            return self._values[key]
        if isinstance(x, Parameter):
            try:
                v = self.graph.add_const(x.name, x._data, param=True)
            except ValueError:
                raise ValueError(f"two different Parameters are named {x.name!r}; parameter "
                                 "names must be unique in a network") from None
            assert v.data is x._data, "a param constant must share the Parameter's array"
            self.params.append((x, v))
        elif isinstance(x, Tensor):
            name = getattr(x, "const_name", None) or f"{self.scope}/data"
            v = self.graph.add_const(name, x._data, unique=True)
        elif isinstance(x, (numbers.Number, np.ndarray, np.generic)):
            return self.graph.add_const(f"{self.scope}/data", as_array(x, like), unique=True)
        else:
            raise TypeError(f"cannot use {type(x).__name__} as a tensor in a graph")
        self._values[key] = v
        self._keep.append(x)
        return v

    def bound_value(self, x) -> Value | None:
        """The Value already made for ``x`` in this trace, if any (no new constant)."""
        return self._values.get(id(x))

    def emit(self, op: str, inputs: list[Value], attrs: dict) -> list[Value]:
        name = self.graph.scoped_name(self.scope, op)
        return list(emit(self.graph, op, inputs, attrs, name=name).outputs)


def as_array(x, like=None) -> np.ndarray:
    """A number or array as an array; Python numbers take ``like``'s dtype (a Value, Tensor
    or array), else float32 for floats and int32 for ints."""
    if isinstance(x, np.ndarray):
        return x
    if isinstance(like, Value):
        return np.asarray(x, dtype=like.type.dtype.np)
    if like is not None:  # a Tensor (DType) or an ndarray (NumPy dtype)
        return np.asarray(x, dtype=dtypes.as_dtype(like.dtype).np)
    if isinstance(x, bool):
        return np.asarray(x)
    if isinstance(x, numbers.Integral):
        return np.asarray(x, dtype=np.int32)
    if isinstance(x, numbers.Number):
        return np.asarray(x, dtype=np.float32)
    return np.asarray(x)


@contextlib.contextmanager
def tracing(graph: Graph, root_cell=None):
    """Make a new Tracer for ``graph`` the active one for the duration of the block."""
    global _active
    if _active is not None:
        raise RuntimeError("a graph is already being traced; nested tracing is not supported")
    tracer = Tracer(graph, root_cell)
    _active = tracer
    try:
        yield tracer
    finally:
        _active = None


def new_input(tracer: Tracer, name: str, shape, dtype):
    from todkit.frontend.tensor import TracedTensor
    from todkit.ir.graph import TensorType

    return TracedTensor(tracer.graph.add_input(name, TensorType(shape, dtypes.as_dtype(dtype))))
