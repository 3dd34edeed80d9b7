"""Resizing a loaded graph: new input shapes, every node's output types inferred again.

As MindSpore Lite's Resize: only the graph inputs change; constants keep their shapes, so a
graph whose weights or attributes encode the batch size (a Reshape to a literal shape, a
ones-vector constant of batch length) cannot take another batch and the error names the node.
``Conv2DBackpropInput`` carries dx's shape as an attribute (Lite: a constant input that the
kernel re-reads at resize); its batch dimension follows the forward input's.
"""

from __future__ import annotations

from todkit.core.errors import RET_INFER_ERR, InferShapeError, ParamError
from todkit.ir.graph import Graph, TensorType
from todkit.opset.registry import OPS


def reinfer(graph: Graph, shapes: dict[str, tuple[int, ...]], where: str) -> None:
    """Set the inputs named in ``shapes`` to their new shapes and infer every node again, in
    place; on failure every type and attribute is restored and the error is raised."""
    by_name = {v.name: v for v in graph.inputs}
    for name, shape in shapes.items():
        v = by_name.get(name)
        if v is None:
            raise ParamError(f"{where}: resize: no input tensor named {name!r}")
        if len(shape) != len(v.type.shape) or any(int(d) <= 0 for d in shape):
            raise ParamError(f"{where}: resize: input {name!r} has shape "
                             f"{list(v.type.shape)}; got {list(shape)} (same rank, dims > 0)")
    saved_types = {id(v): (v, v.type) for v in graph.values()}
    saved_attrs = [(n, dict(n.attrs)) for n in graph.nodes]
    try:
        for name, shape in shapes.items():
            by_name[name].type = TensorType(tuple(int(d) for d in shape), by_name[name].type.dtype)
        for n in graph.nodes:
            if n.op == "Conv2DBackpropInput":
                # dx has the forward input's shape; its batch is the resized batch.
                dy = n.inputs[0].type.shape
                n.attrs["input_sizes"] = (dy[0],) + tuple(n.attrs["input_sizes"])[1:]
            outs = OPS[n.op].infer_types([v.type for v in n.inputs], n.attrs,
                                         where=f"{where}: node {n.name!r}")
            if len(outs) != len(n.outputs):
                raise InferShapeError(f"{where}: node {n.name!r}: {len(outs)} outputs inferred, "
                                      f"{len(n.outputs)} in the graph")
            for v, t in zip(n.outputs, outs):
                v.type = t
    except InferShapeError as e:
        for v, t in saved_types.values():
            v.type = t
        for n, attrs in saved_attrs:
            n.attrs = attrs
        raise InferShapeError(f"resize failed (a weight or attribute depends on the batch "
                              f"size?): {e}", RET_INFER_ERR) from e
