"""Exporting a session's graph: the whole train graph, or only its inference part.

Train export writes the graph as it is: the optimizer kernels have updated the constant
arrays in place, so the file carries the current weights and optimizer state. Inference
export keeps only the nodes feeding the eval outputs (Lite's MT_INFERENCE export without its
fusion passes): loss, gradient and optimizer nodes are gone, the inputs are the graph inputs
those nodes read (the data, not the label) and the outputs are the eval outputs (the logits).
"""

from __future__ import annotations

from todkit.ir.graph import Graph, Node, Value


def copy_subgraph(graph: Graph, nodes: list[Node], outputs: list[Value],
                  name: str | None = None) -> Graph:
    """A new graph with copies of ``nodes`` (in order), the graph inputs and constants they
    read, and ``outputs``. Constant arrays are copied, so the export is a snapshot."""
    sub = Graph(name or graph.name)
    sub.attrs = dict(graph.attrs)
    read = {id(v) for n in nodes for v in n.inputs} | {id(v) for v in outputs}
    new: dict[int, Value] = {}

    def keep_format(old: Value, v: Value) -> Value:
        v.format = old.format
        new[id(old)] = v
        return v

    for v in graph.inputs:
        if id(v) in read:
            keep_format(v, sub.add_input(v.name, v.type))
    for c in graph.consts:
        if id(c) in read:
            keep_format(c, sub.add_const(c.name, c.data.copy(), param=c.param, dtype=c.type.dtype))
    for n in nodes:
        copy = sub.add_node(n.op, [new[id(v)] for v in n.inputs], n.attrs,
                            [v.type for v in n.outputs], name=n.name,
                            out_names=[v.name for v in n.outputs])
        for old, v in zip(n.outputs, copy.outputs):
            keep_format(old, v)
    sub.outputs = [new[id(v)] for v in outputs]
    return sub


def inference_graph(session) -> Graph:
    """The inference part of ``session``'s graph with the current weights."""
    roles = session.roles
    return copy_subgraph(session.graph, roles.inference_nodes, roles.eval_outputs)


def write_ms(graph: Graph, path, *, name: str | None = None, version: str | None = None) -> None:
    """Write ``graph`` as a .ms file through the codec (which writes atomically)."""
    from todkit.formats import ms

    name = name or graph.name
    # As Lite's TrainExport: model name, original version, one subgraph "<name>_subgraph".
    kwargs = {"name": name, "subgraph_name": f"{name}_subgraph", "fmk_type": 3}
    if version:
        kwargs["version"] = version
    ms.write(graph, path, **kwargs)


def patch_original(ms_model, graph: Graph, path) -> bool:
    """Write ``ms_model``'s original buffer with ``graph``'s current constant data patched in
    (Lite's MT_TRAIN export of an unchanged model). False if the codec cannot patch it."""
    from todkit.core.errors import ParamError
    from todkit.formats import ms

    if not getattr(ms_model, "raw", None) or not hasattr(ms, "patch_tensor_data"):
        return False
    index = getattr(ms_model, "tensor_index", {}) or {}
    updates = {c.name: c.data for c in graph.consts if c.name in index}
    try:
        data = ms.patch_tensor_data(ms_model.raw, updates, where=str(path))
    except ParamError:
        return False  # a constant changed size or dtype: write the graph instead
    ms.atomic_write(path, data)
    return True


# Ops that only matter while training: removed from an inference export (Lite's
# DropoutNodeRemovePass); BatchNorm switches to its inference form.
TRAIN_ONLY_PASSTHROUGH = {"Dropout": 0}
BATCHNORM_OPS = ("BatchNorm", "FusedBatchNorm")


def _needed_nodes(nodes, outputs) -> list:
    """The nodes (in order) that ``outputs`` depend on."""
    keep: set[int] = set()
    stack = [v.producer for v in outputs if v.producer is not None]
    while stack:
        n = stack.pop()
        if id(n) in keep:
            continue
        keep.add(id(n))
        stack.extend(v.producer for v in n.inputs if v.producer is not None)
    return [n for n in nodes if id(n) in keep]


def for_inference(graph: Graph) -> Graph:
    """``graph`` (a fresh copy) with Dropout bypassed and BatchNorm in inference mode."""
    for n in list(graph.nodes):
        if n.op in TRAIN_ONLY_PASSTHROUGH:
            src = n.inputs[TRAIN_ONLY_PASSTHROUGH[n.op]]
            out = n.outputs[0]
            graph.replace_uses(out, src)
            graph.outputs = [src if v is out else v for v in graph.outputs]
            graph.remove_nodes([n])
        elif n.op in BATCHNORM_OPS and "is_training" in n.attrs:
            n.attrs["is_training"] = False
    graph.prune_consts()
    return graph


def export_graph(session, inference_only: bool, output_names: list[str]) -> Graph:
    """What an export writes: the train graph, or the inference part (optionally only what
    computes ``output_names``), as a snapshot of the current weights."""
    from todkit.core.errors import ParamError

    if not inference_only:
        if output_names:
            import warnings
            warnings.warn("export: output_tensor_names are ignored for a train export "
                          "(as MindSpore Lite)", stacklevel=3)
        return session.graph
    roles = session.roles
    outputs = list(roles.eval_outputs)
    if output_names:
        by_name = {v.name: v for n in session.graph.nodes for v in n.outputs}
        by_name.update({v.name: v for v in session.graph.inputs})
        unknown = [t for t in output_names if t not in by_name]
        if unknown:
            raise ParamError(f"export: no tensor named {', '.join(map(repr, unknown))} in "
                             f"graph {session.graph.name!r}")
        outputs = [by_name[t] for t in output_names]
    nodes = _needed_nodes(roles.inference_nodes if not output_names else roles.train_nodes,
                          outputs)
    return for_inference(copy_subgraph(session.graph, nodes, outputs))


def export_bytes(session, path, *, inference_only: bool, quantize: bool,
                 output_names: list[str], name: str, version: str | None) -> None:
    """Write the export of ``session`` to ``path`` atomically (temp, fsync, rename)."""
    from todkit.formats import ms
    from todkit.runtime.quant import quantize_weights

    graph = export_graph(session, inference_only, output_names)
    kwargs = {"name": name, "subgraph_name": f"{name}_subgraph", "fmk_type": 3}
    if version:
        kwargs["version"] = version
    data = ms.dumps(graph, **kwargs)
    if quantize:
        data = quantize_weights(data, str(path))
    ms.atomic_write(path, data)
