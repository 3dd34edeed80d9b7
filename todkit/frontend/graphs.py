"""Building whole graphs from cells: inference graphs, train graphs, and the gradients a
``TrainOneStepCell`` asks for while it is traced."""

from __future__ import annotations

import inspect

import numpy as np

from todkit.autodiff import add_backward
from todkit.core import dtypes
from todkit.frontend import trace
from todkit.frontend.tensor import Tensor, TracedTensor
from todkit.ir.graph import Graph
from todkit.opset.verify import verify


def input_names(cell, count: int) -> list[str]:
    """Graph input names as MindSpore takes them from ``construct``'s signature: named
    arguments by name (``x``), ``*inputs`` as ``inputs0``, ``inputs1``..."""
    names: list[str] = []
    for p in inspect.signature(cell.construct).parameters.values():
        if len(names) == count:
            break
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
            names.append(p.name)
        elif p.kind == p.VAR_POSITIONAL:
            names += [f"{p.name}{i}" for i in range(count - len(names))]
    if len(names) != count:
        raise TypeError(f"{type(cell).__name__}.construct does not take {count} inputs")
    return names


def _flatten(out) -> list:
    if isinstance(out, (tuple, list)):
        return [y for x in out for y in _flatten(x)]
    return [out]


def build_graph(cell, inputs, input_names_=None):
    """Trace ``cell`` on example ``inputs`` (Tensors or arrays: only shape and dtype are
    used). Returns the verified graph and the (Parameter, Value) pairs bound in it.
    ``graph.attrs['training']`` is True for cells that build a train step."""
    arrays = [x.asnumpy() if isinstance(x, Tensor) else np.asarray(x) for x in inputs]
    names = input_names_ or input_names(cell, len(arrays))
    is_train = bool(getattr(cell, "_builds_train_graph", False))
    graph = Graph(f"{type(cell).__name__}_construct")
    with trace.tracing(graph, cell) as tracer:
        ins = [trace.new_input(tracer, n, a.shape, dtypes.from_numpy(a.dtype))
               for n, a in zip(names, arrays)]
        out = cell(*ins)
        graph.outputs = [tracer.value_of(o) for o in _flatten(out)]
        bound = list(tracer.params)
    graph.attrs["training"] = is_train
    verify(graph, where=f"traced {type(cell).__name__}")
    return graph, bound


def gradients(loss: TracedTensor, weights, sens: float = 1.0) -> tuple[TracedTensor, ...]:
    """d(sum(sens * loss)) / d(weights), traced (MindSpore's ``GradOperation(get_by_list=True,
    sens_param=True)`` with a sens of ``sens`` everywhere). Backward nodes are emitted only
    for what the weights need; a weight the loss does not use gets a zero gradient."""
    tracer = trace.active()
    if tracer is None or not isinstance(loss, TracedTensor):
        raise RuntimeError("gradients are taken while a train graph is traced; call the "
                           "TrainOneStepCell (or export it) instead")
    graph = tracer.graph
    sens_v = graph.add_const(f"{tracer.scope}/sens",
                             np.full(loss.shape, sens, loss.dtype.np), unique=True)
    used = [(w, tracer.bound_value(w)) for w in weights]
    grads = add_backward(graph, loss.value, [v for _, v in used if v is not None], sens_v)
    out = []
    for w, v in used:
        g = grads.get(v) if v is not None else None
        if g is None:
            g = graph.add_const(f"{tracer.scope}/zeros_like_{w.name}",
                                np.zeros(w.shape, w.dtype.np), unique=True)
        out.append(TracedTensor(g))
    return tuple(out)
