"""The real converter's RemoveRedundantOpPass and exporter walk on the stand-in ANF graph
(todkit/converter/export_order.py), and their use by the converter."""

from __future__ import annotations

from tests.shared_paths import MS210, need
from todkit.converter import passes
from todkit.converter.export_order import (
    MONAD,
    _Anf,
    exporter_order,
    remove_redundant_ops,
    topo_sort,
)
from todkit.converter.nhwc import to_nhwc
from todkit.formats import mindir
from todkit.runtime.export import copy_subgraph


def leaf(name: str) -> _Anf:
    return _Anf(name, [], is_cnode=False)


def names(nodes) -> list[str]:
    return [n.op for n in nodes if n.is_cnode]


def test_topo_sort_explores_the_last_input_first():
    a, b = _Anf("a", [leaf("x")]), _Anf("b", [leaf("x")])
    root = _Anf("Return", [_Anf("c", [a, b])])
    assert names(topo_sort(root)) == ["b", "a", "c", "Return"]


def test_update_state_over_parameter_loads_collapses_and_drops_what_hangs_on_it():
    """UpdateState(U, MakeTuple(Load(w))) becomes U: an AssignAdd hung on it is not reached."""
    w = leaf("w")
    pack = _Anf("MakeTuple", [_Anf("Load", [w, MONAD])])
    state = _Anf("UpdateState", [MONAD, pack])
    bump = _Anf("AssignAdd", [leaf("step"), leaf("one"), state])
    after = _Anf("UpdateState", [state, bump])
    out = _Anf("Depend", [_Anf("MatMul", [leaf("x"), w]), after])
    root = _Anf("Return", [out])
    remove_redundant_ops(root, train=True)
    assert "AssignAdd" not in names(topo_sort(root))


def test_update_state_over_a_computed_value_keeps_it_as_control_input():
    """The MakeTuple holds a CNode (a weight's Transpose): the UpdateState is replaced by it and
    the AssignAdd stays reachable."""
    pack = _Anf("MakeTuple", [_Anf("Transpose", [leaf("w")])])
    state = _Anf("UpdateState", [MONAD, pack])
    bump = _Anf("AssignAdd", [leaf("step"), leaf("one"), state])
    after = _Anf("UpdateState", [state, bump])
    root = _Anf("Return", [_Anf("Depend", [_Anf("MatMul", [leaf("x")]), after])])
    remove_redundant_ops(root, train=True)
    # the second UpdateState holds the AssignAdd and its state, which the AssignAdd reads:
    # it becomes Depend(AssignAdd, state)
    assert names(topo_sort(root)) == ["Transpose", "MakeTuple", "AssignAdd", "Depend",
                                      "MatMul", "Depend", "Return"]


def test_update_state_of_a_node_and_its_user_becomes_depend():
    pre = _Anf("Assign", [leaf("p"), leaf("v"), MONAD])
    post = _Anf("Adam", [leaf("w"), pre])
    state = _Anf("UpdateState", [pre, post])
    root = _Anf("Return", [state])
    remove_redundant_ops(root, train=True)
    depend = root.inputs[0]
    assert depend.op == "Depend" and depend.inputs == [post, pre]
    assert post.inputs[1] is MONAD  # the data edge was cut, the order is kept by the Depend


def test_unrelated_update_state_inputs_become_a_make_tuple():
    a, b = _Anf("Mul", [leaf("x")]), _Anf("Assign", [leaf("p"), leaf("v")])
    state = _Anf("UpdateState", [a, b, _Anf("Neg", [leaf("y")])])
    root = _Anf("Return", [state])
    remove_redundant_ops(root, train=True)
    assert state.op == "MakeTuple" and names(topo_sort(root))[0] == "Neg"


def test_real_order_that_breaks_an_in_place_update_is_not_used(tmp_path):
    """In smallcnn_bn_sgd_train the real pass would drop the readers listed in an UpdateState
    it turns into a Depend, and SGD-op1 would overwrite fc.weight before the gradient MatMul
    reads it; the converter keeps a safe order instead."""
    graph = mindir.read(need(MS210 / "smallcnn_bn_sgd_train.mindir"))
    to_nhwc(graph)
    order, _ = exporter_order(graph, train=True)
    assert not passes.respects_data_and_updates(graph, order)
    passes.order_like_exporter(graph)
    assert passes.respects_data_and_updates(graph, graph.nodes)
    at = [n.name for n in graph.nodes]
    grad = ("Gradients/Default/network-WithLossCell/_backbone-SmallCNN/fc-Dense/Grad_MatMul/"
            "MatMul-op0")
    assert at.index(grad) < at.index("Default/optimizer-SGD/SGD-op1")


def test_without_a_record_the_walk_is_used():
    graph = mindir.read(need(MS210 / "mlp_digits_train.mindir"))
    assert exporter_order(graph, train=True) is not None
    graph = copy_subgraph(graph, graph.nodes, graph.outputs)
    assert exporter_order(graph, train=True) is None
    passes.order_like_exporter(graph)
    assert not any(n.op == "AssignAdd" for n in graph.nodes)
