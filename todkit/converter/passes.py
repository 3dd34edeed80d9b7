"""The graph rewrites the MindSpore Lite 2.0 converter makes to a train graph, as far as they
show in its output (the files in the shared corpus, ``lite-2.0/``).

Each pass names the real converter behaviour it reproduces and the corpus evidence for it.
"""

from __future__ import annotations

from todkit.ir.graph import Graph, Node

OPTIMIZERS = ("Adam", "ApplyMomentum", "SGD")


def drop_unobserved_global_step(graph: Graph) -> None:
    """Remove ``AssignAdd(global_step, 1)`` when nothing can observe it.

    MindSpore's optimizers count steps with an AssignAdd hung on the side-effect chain only
    (``UpdateState(UpdateState(U, MakeTuple(Load(w)...)), AssignAdd)``). The real converter's
    RemoveRedundantOpPass replaces an UpdateState by its monad input when the other input's
    inputs are all parameters or values (``CheckIsAllInputsParam``): the first UpdateState
    collapses when every Load it packs read a plain parameter, and then so does the one
    holding the AssignAdd, which is left unused and is not exported. When a weight was
    re-laid out (NHWC conversion puts a ``<weight>_post_perm`` Transpose between the weight and
    its Loads), the first UpdateState does not collapse, the AssignAdd stays tied to the chain
    and is exported (LeNet keeps it; the Dense corpus nets lose it). ``export_order`` runs
    that pass on the file's structure; this is the fallback for a graph without it, applying the
    rule through its observable condition: an AssignAdd of constants whose result nobody reads
    goes, unless a weight has a post-permutation.
    """
    relaid = any(n.op == "Transpose" and n.name.endswith("_post_perm") for n in graph.nodes)
    if relaid:
        return
    dead = [n for n in graph.nodes if n.op == "AssignAdd"
            and all(v.is_const for v in n.inputs)
            and not any(o.users or o in graph.outputs for o in n.outputs)]
    graph.remove_nodes(dead)


def name_tuple_outputs(graph: Graph) -> None:
    """MindSpore's Adam primitive returns a tuple (var, m, v); the real exporter writes the one
    tensor Lite's Adam has as ``<node>/output-0`` (ApplyMomentum and SGD return a tensor and
    their output keeps the node name)."""
    for n in graph.nodes:
        if n.op == "Adam" and len(n.outputs) == 1 and n.outputs[0].name == n.name:
            graph._names.discard(n.outputs[0].name)
            n.outputs[0].name = graph._claim(f"{n.name}/output-0")


def in_place_constraints(graph: Graph) -> dict[int, list[Node]]:
    """id(node that updates a value in place) -> the nodes that must run before it: every
    other reader of the value's old contents (users that do not themselves update it) and the
    updaters of it earlier in the graph's current order."""
    from todkit.opset import OPS

    position = {id(n): k for k, n in enumerate(graph.nodes)}
    after: dict[int, list[Node]] = {}
    for n in graph.nodes:
        spec = OPS.get(n.op)
        for k in spec.mutated(n.attrs) if spec is not None else ():
            if k >= len(n.inputs):
                continue
            v = n.inputs[k]
            for u in v.users:
                u_spec = OPS.get(u.op)
                mutates_v = u_spec is not None and any(
                    u.inputs[j] is v for j in u_spec.mutated(u.attrs) if j < len(u.inputs))
                if u is not n and (not mutates_v or position[id(u)] < position[id(n)]):
                    after.setdefault(id(n), []).append(u)
    return after


def respects_data_and_updates(graph: Graph, order: list[Node]) -> bool:
    """``order`` runs every node after its inputs' producers and every in-place update after
    the readers ``in_place_constraints`` lists."""
    at = {id(n): k for k, n in enumerate(order)}
    for n in order:
        for v in n.inputs:
            if v.producer is not None and at.get(id(v.producer), len(order)) >= at[id(n)]:
                return False
    for k, before in in_place_constraints(graph).items():
        if k in at and any(at.get(id(u), -1) > at[k] for u in before):
            return False
    return True


def order_like_exporter(graph: Graph, train: bool = True) -> None:
    """The real converter's node order, and only the nodes it writes.

    From the MINDIR's side-effect structure when the reader recorded it (``export_order``:
    the real RemoveRedundantOpPass and exporter walk, which reproduce every corpus file node for
    node and leave out an ``AssignAdd(global_step)`` nothing observes). That order is used
    only if it keeps the rule below; otherwise, and for graphs without the record, the walk
    below is used.

    The walk: a depth-first post-order from the graph outputs, then from the nodes nothing
    reads (optimizers, state updates) in their current order, visiting inputs first to last.
    In-place updates are the one thing data edges do not order: MINDIR orders them through
    Load/UpdateState. Here an op that mutates a value also waits for every reader of the
    value's old contents (``in_place_constraints``), visited after its own inputs, so an
    optimizer never overwrites a weight a gradient still has to read.
    """
    from todkit.converter.export_order import exporter_order

    found = exporter_order(graph, train)
    dropped_read = found is None or any(o.users or o in graph.outputs
                                        for n in found[1] for o in n.outputs)
    if dropped_read:
        if train:
            drop_unobserved_global_step(graph)
    else:
        order, dropped = found
        graph.remove_nodes(dropped)
        if respects_data_and_updates(graph, order):
            graph.nodes = order
            return
    # e.g. mindspore-2.10/smallcnn_bn_sgd_train: when the real pass turns an
    # UpdateState(u, SGD, reader, ...) into Depend(SGD, u) it drops the readers, and its order
    # would run SGD-op1 on fc.weight before the gradient MatMul that reads fc.weight
    _walk_order(graph)


def _walk_order(graph: Graph) -> None:
    producer: dict[int, Node] = {id(o): n for n in graph.nodes for o in n.outputs}
    after = in_place_constraints(graph)
    done: set[int] = set()
    entered: set[int] = set()  # a dependency cycle through `after` is broken, not followed
    order: list[Node] = []

    def visit(root: Node) -> None:
        if id(root) in entered:
            return
        entered.add(id(root))
        stack: list[tuple[Node, int]] = [(root, 0)]
        while stack:
            node, k = stack.pop()
            if id(node) in done:
                continue
            deps = after.get(id(node), [])
            if k < len(node.inputs) + len(deps):
                stack.append((node, k + 1))
                p = producer.get(id(node.inputs[k])) if k < len(node.inputs) \
                    else deps[k - len(node.inputs)]
                if p is not None and id(p) not in entered:
                    entered.add(id(p))
                    stack.append((p, 0))
                continue
            done.add(id(node))
            order.append(node)

    for v in graph.outputs:
        p = producer.get(id(v))
        if p is not None:
            visit(p)
    for n in graph.nodes:
        if not any(o.users for o in n.outputs):
            visit(n)
    for n in graph.nodes:  # anything left (cannot happen in a verified graph) keeps its place
        visit(n)
    graph.nodes = order


def spell_grads_for_lite(graph: Graph) -> None:
    from todkit.converter.lite_forms import (
        group_norm_grads_with_lite_ops,
        sign_products_as_abs_grad,
    )

    sign_products_as_abs_grad(graph)
    group_norm_grads_with_lite_ops(graph)


def layout_passes(graph: Graph) -> None:
    """The NHWC conversion and format tags of an inference graph."""
    from todkit.converter.formats import assign_formats
    from todkit.converter.lite_forms import spell_for_lite
    from todkit.converter.nhwc import to_nhwc

    spell_grads_for_lite(graph)
    to_nhwc(graph, weight_posts=False)
    order_like_exporter(graph, train=False)
    spell_for_lite(graph, train=False)  # Dropout2D: removed, as Dropout
    assign_formats(graph)


def train_passes(graph: Graph) -> None:
    from todkit.converter.formats import assign_formats
    from todkit.converter.lite_forms import spell_for_lite
    from todkit.converter.nhwc import to_nhwc

    spell_grads_for_lite(graph)  # before the layout: they are written in MindSpore's NCHW
    to_nhwc(graph)  # before the ordering: whether global_step stays depends on the re-layout
    order_like_exporter(graph)
    spell_for_lite(graph)  # PReLUGrad, Dropout2D: in their place, after the ordering
    name_tuple_outputs(graph)
    assign_formats(graph)
