"""``Cell``: MindSpore's module class, with its parameter naming and scope naming.

Parameters and sub-cells assigned as attributes are registered in ``_params`` / ``_cells``.
Parameter names follow MindSpore: a Parameter created without a name takes its attribute name,
and assigning a cell as an attribute of a cell with ``auto_prefix`` renames every parameter
below it to ``<attribute>.<path>`` (``fc.weight``, ``features.0.weight``). Wrappers and
optimizers are built with ``auto_prefix=False``, so they do not add to the names.

Calling a cell runs ``construct``. Outside a trace that is eager NumPy; inside a trace it
records nodes in the cell's scope. Cells that only make sense as a graph (``TrainOneStepCell``)
set ``_compile_on_call`` and are traced once per input signature, then interpreted.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np

from todkit.frontend import trace
from todkit.frontend.parameter import PARAMETER_NAME_DEFAULT, Parameter, ParameterTuple
from todkit.frontend.tensor import Tensor


class Cell:
    _compile_on_call = False

    def __init__(self, auto_prefix=True, flags=None):
        object.__setattr__(self, "_params", OrderedDict())
        object.__setattr__(self, "_cells", OrderedDict())
        object.__setattr__(self, "_param_tuples", OrderedDict())
        object.__setattr__(self, "_auto_prefix", bool(auto_prefix))
        object.__setattr__(self, "training", False)
        object.__setattr__(self, "_compiled", {})

    @property
    def cls_name(self) -> str:
        return type(self).__name__

    def _check_init(self):
        if "_params" not in self.__dict__:
            raise RuntimeError(f"{type(self).__name__}.__init__ must call super().__init__() "
                               "before assigning attributes")

    # -- attribute registration -----------------------------------------------------------
    def __setattr__(self, name, value):
        if isinstance(value, Parameter):
            self._check_init()
            self.insert_param_to_cell(name, value)
        elif isinstance(value, Cell):
            self._check_init()
            self.insert_child_to_cell(name, value)
        elif isinstance(value, ParameterTuple):
            self._check_init()
            self.__dict__.pop(name, None)
            self._param_tuples[name] = value
        elif "_params" in self.__dict__ and name in self._params and isinstance(value, Tensor):
            # Graph-mode assignment to a Parameter attribute is an Assign (MindSpore's
            # ``self.beta1_power = beta1_power`` in optimizers).
            from todkit.frontend import primitives as P

            P.Assign()(self._params[name], value)
        else:
            if "_params" in self.__dict__:
                for table in (self._params, self._cells, self._param_tuples):
                    table.pop(name, None)
            object.__setattr__(self, name, value)

    def __getattr__(self, name):
        d = self.__dict__
        for table in ("_params", "_cells", "_param_tuples"):
            if table in d and name in d[table]:
                return d[table][name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name):
        for table in (self._params, self._cells, self._param_tuples):
            if name in table:
                del table[name]
                return
        object.__delattr__(self, name)

    def insert_param_to_cell(self, param_name: str, param: Parameter, check_name_contain_dot=True):
        if check_name_contain_dot and "." in param_name:
            raise KeyError(f"parameter attribute name {param_name!r} cannot contain '.'")
        if param.name == PARAMETER_NAME_DEFAULT:
            param.name = param_name
        self.__dict__.pop(param_name, None)
        self._cells.pop(param_name, None)
        self._params[param_name] = param

    def insert_child_to_cell(self, child_name: str, child_cell: Cell):
        if self._auto_prefix:
            child_cell.update_parameters_name(child_name + ".")
        self.__dict__.pop(child_name, None)
        self._params.pop(child_name, None)
        self._cells[child_name] = child_cell

    def update_parameters_name(self, prefix: str = "", recurse: bool = True):
        """Rename every parameter below to ``prefix + <attribute path>``."""
        for name, param in self.parameters_and_names(expand=recurse):
            param.name = prefix + name

    # -- queries ------------------------------------------------------------------------
    def name_cells(self) -> OrderedDict[str, Cell]:
        return OrderedDict(self._cells)

    def cells(self):
        return self._cells.values()

    def cells_and_names(self, cells=None, name_prefix: str = ""):
        """(path, cell) for this cell and every cell below it, each cell once."""
        seen = set() if cells is None else cells
        if id(self) not in seen:
            seen.add(id(self))
            yield name_prefix, self
        for name, cell in self._cells.items():
            if cell is not None and id(cell) not in seen:
                path = f"{name_prefix}.{name}" if name_prefix else name
                yield from cell.cells_and_names(seen, path)

    def parameters_and_names(self, name_prefix: str = "", expand: bool = True):
        """(attribute path, Parameter) for every parameter, each once. Parameter tuples
        (optimizer slots) are listed under their parameters' own names."""
        cells = self.cells_and_names(name_prefix=name_prefix) if expand else [(name_prefix,
                                                                                 self)]
        seen = set()
        for cell_name, cell in cells:
            entries = list(cell._params.items())
            for tup in cell._param_tuples.values():
                entries += [(p.name, p) for p in tup]
            for par_name, par in entries:
                if par is not None and id(par) not in seen:
                    seen.add(id(par))
                    yield (f"{cell_name}.{par_name}" if cell_name else par_name), par

    def get_parameters(self, expand: bool = True):
        for _, p in self.parameters_and_names(expand=expand):
            yield p

    def trainable_params(self, recurse: bool = True) -> list[Parameter]:
        return [p for p in self.get_parameters(expand=recurse) if p.requires_grad]

    def untrainable_params(self, recurse: bool = True) -> list[Parameter]:
        return [p for p in self.get_parameters(expand=recurse) if not p.requires_grad]

    def parameters_dict(self, recurse: bool = True) -> OrderedDict[str, Parameter]:
        return OrderedDict((p.name, p) for p in self.get_parameters(expand=recurse))

    # -- modes ----------------------------------------------------------------------------
    def set_train(self, mode: bool = True) -> Cell:
        for _, cell in self.cells_and_names():
            object.__setattr__(cell, "training", bool(mode))
        return self

    def set_grad(self, requires_grad: bool = True) -> Cell:
        object.__setattr__(self, "requires_grad", requires_grad)
        return self

    # -- calling --------------------------------------------------------------------------
    def construct(self, *inputs, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not define construct")

    def __call__(self, *args, **kwargs):
        tracer = trace.active()
        if tracer is not None:
            with tracer.cell_scope(self):
                return self.construct(*args, **kwargs)
        if self._compile_on_call:
            if kwargs:
                raise TypeError(f"{type(self).__name__} takes positional inputs only")
            return self._run_compiled(args)
        return self.construct(*args, **kwargs)

    def _run_compiled(self, args):
        """Trace once per input signature, then run the graph with the reference
        interpreter; Parameters are updated in place by the graph's state ops."""
        from todkit.frontend.graphs import build_graph
        from todkit.opset.interpret import interpret
        from todkit.opset.runctx import RunContext

        arrays = [a.asnumpy() if isinstance(a, Tensor) else np.asarray(a) for a in args]
        key = tuple((a.shape, a.dtype.str) for a in arrays)
        entry = self._compiled.get(key)
        # A Parameter whose array was replaced (set_data with a new shape) needs a new trace.
        if entry is None or any(v.data is not p._data for p, v in entry[1]):
            graph, bound = build_graph(self, arrays)
            entry = self._compiled[key] = (graph, bound)
        graph = entry[0]
        outs = interpret(graph, dict(zip(graph.inputs, arrays)),
                         RunContext(training=bool(graph.attrs.get("training"))))
        res = [Tensor(o) for o in outs]
        return res[0] if len(res) == 1 else tuple(res)

    def __repr__(self) -> str:
        lines = [f"{type(self).__name__}<"]
        for name, cell in self._cells.items():
            sub = repr(cell).replace("\n", "\n  ")
            lines.append(f"  ({name}): {sub}")
        return "\n".join(lines) + ">" if len(lines) > 1 else f"{type(self).__name__}<>"


class SequentialCell(Cell):
    """Cells run in order; children are named '0', '1', ... (or by an OrderedDict's keys)."""

    def __init__(self, *args):
        super().__init__()
        if len(args) == 1 and isinstance(args[0], (list, tuple, OrderedDict)):
            args = args[0]
        items = args.items() if isinstance(args, OrderedDict) else (
            (str(i), c) for i, c in enumerate(args))
        for name, cell in items:
            if not isinstance(cell, Cell):
                raise TypeError(f"SequentialCell takes Cells, got {type(cell).__name__}")
            self.insert_child_to_cell(name, cell)

    def __getitem__(self, index):
        cells = list(self._cells.values())
        if isinstance(index, slice):
            return SequentialCell(cells[index])
        return cells[index]

    def __len__(self) -> int:
        return len(self._cells)

    def append(self, cell: Cell) -> None:
        self.insert_child_to_cell(str(len(self._cells)), cell)

    def construct(self, x):
        for cell in self._cells.values():
            x = cell(x)
        return x


class CellList(Cell):
    """A list of cells named '0', '1', ...; it has no construct of its own."""

    def __init__(self, *args):
        super().__init__()
        cells = args[0] if len(args) == 1 and isinstance(args[0], (list, tuple)) else args
        for c in cells:
            self.append(c)

    def __getitem__(self, index):
        return list(self._cells.values())[index]

    def __len__(self) -> int:
        return len(self._cells)

    def __iter__(self):
        return iter(self._cells.values())

    def append(self, cell: Cell) -> None:
        if not isinstance(cell, Cell):
            raise TypeError(f"CellList takes Cells, got {type(cell).__name__}")
        self.insert_child_to_cell(str(len(self._cells)), cell)
