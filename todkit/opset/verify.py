"""The single checker of graph invariants, called after every reader and pass, and by tests."""

from __future__ import annotations

from todkit.core.errors import GraphFileError, OpNotFoundError
from todkit.ir.graph import Graph


def verify(graph: Graph, where: str = "graph", check_types: bool = True) -> Graph:
    """Check that ``graph`` is well formed; raise GraphFileError naming ``where`` if not.

    - every value name is unique;
    - every node input is a graph input, a constant, or an output of an earlier node
      (so the node list is a topological order);
    - users lists agree with inputs;
    - every op is in the op vocabulary (all unknown ops are reported at once);
    - with ``check_types``, each node's output types equal what its shape rule gives.
    """
    from todkit.opset.registry import OPS

    problems: list[str] = []
    seen: dict[str, object] = {}
    available: set[int] = set()

    def claim(v):
        if v.name in seen and seen[v.name] is not v:
            problems.append(f"value name {v.name!r} is used twice")
        seen[v.name] = v
        available.add(id(v))

    for v in graph.inputs:
        if v.data is not None:
            problems.append(f"graph input {v.name!r} holds data")
        claim(v)
    for v in graph.consts:
        if v.data is None:
            problems.append(f"constant {v.name!r} has no data")
        elif tuple(v.data.shape) != v.type.shape or v.data.dtype != v.type.dtype.np:
            problems.append(f"constant {v.name!r}: data {v.data.dtype}{list(v.data.shape)} "
                            f"does not match its type {v.type}")
        claim(v)
    missing: dict[str, list[str]] = {}
    for n in graph.nodes:
        for i, v in enumerate(n.inputs):
            if id(v) not in available:
                problems.append(f"node {n.name!r} ({n.op}) input {i} {v.name!r} is not produced "
                                "before it")
            elif n not in v.users:
                problems.append(f"node {n.name!r} is missing from the users of {v.name!r}")
        opdef = OPS.get(n.op)
        if opdef is None:
            missing.setdefault(n.op, []).append(n.name)
        elif check_types and not problems:
            try:
                want = opdef.infer_types([v.type for v in n.inputs], n.attrs, where=n.name)
            except Exception as e:  # shape rule rejects the inputs
                problems.append(str(e))
            else:
                got = [v.type for v in n.outputs]
                if want != got:
                    problems.append(f"node {n.name!r} ({n.op}) outputs {got}, its shape rule "
                                    f"gives {want}")
        for k, v in enumerate(n.outputs):
            if v.producer is not n or v.index != k:
                problems.append(f"output {k} of node {n.name!r} does not point back to it")
            claim(v)
    for v in graph.outputs:
        if id(v) not in available:
            problems.append(f"graph output {v.name!r} is not produced")
    if missing:
        listing = "; ".join(f"{op} (nodes: {', '.join(names)})" for op, names in missing.items())
        raise OpNotFoundError(f"{where}: unsupported ops: {listing}", missing)
    if problems:
        raise GraphFileError(f"{where}: invalid graph: " + "; ".join(problems[:20]))
    return graph
