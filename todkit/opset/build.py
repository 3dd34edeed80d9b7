"""Adding ops to a graph: attributes completed and output types inferred by the op's rules."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from todkit.ir.graph import Graph, Node, Value
from todkit.opset.registry import get_op


def emit(graph: Graph, op: str, inputs: Iterable[Value], attrs: dict[str, Any] | None = None,
         name: str | None = None, out_names: list[str] | None = None) -> Node:
    opdef = get_op(op)
    where = name or op
    full = opdef.complete_attrs(attrs or {}, where=where)
    inputs = list(inputs)
    types = opdef.infer_types([v.type for v in inputs], full, where=where)
    return graph.add_node(op, inputs, full, types, name=name, out_names=out_names)
