"""W1/W7's dense rewrite (todkit/runtime/rewrite_dense.py): MatMul -> BiasAdd (-> ReLU) and
MatMul -> ReluGrad as one call each, lean MatMul / BiasAddGrad calls, and Adam's one-value
beta-power and step-counter updates as one call per run. Train and eval steps must equal
the per-node kernels bit for bit; a chain whose intermediate another node reads must not be
fused there, and an Assign whose output is read must still write it."""

from __future__ import annotations

import numpy as np

from tests.test_runtime_graphs import GRAD, LOSS, OPT, f32
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.runtime.session import Session

NET = "Default/network-WithLossCell/_backbone-MLP"
N, IN, HID, CLASSES = 6, 5, 4, 3


def mlp_graph(seed: int = 0, extra_reader: bool = False) -> Graph:
    """Dense-ReLU-Dense, sparse CE, Adam laid out as W1's converted file (beta powers
    advanced by Mul, stored by Assign after the backward pass, global step AssignAdd last).
    ``extra_reader``: an Add also reads the first product and the first BiasAdd output,
    and the loss-side Assign output feeds a graph output."""
    rng = np.random.default_rng(seed)
    g = Graph("mlp_train")
    scope = OPT.format("Adam")
    b1p = g.add_const("beta1_power", f32(1.0), param=True)
    b2p = g.add_const("beta2_power", f32(1.0), param=True)
    beta1, beta2 = g.add_const("data-0", f32([0.9])), g.add_const("data-1", f32([0.999]))
    eps = g.add_const("data-2", f32([1e-8]))
    lr = g.add_const("learning_rate", f32(0.01), param=True)
    b1n = emit(g, "Mul", [b1p, beta1], name=f"{scope}/Mul-op0").outputs[0]
    b2n = emit(g, "Mul", [b2p, beta2], name=f"{scope}/Mul-op1").outputs[0]
    x = g.add_input("inputs0", TensorType((N, IN), dtypes.float32))
    label = g.add_input("inputs1", TensorType((N,), dtypes.int32))
    w1 = g.add_const("0.weight", f32(rng.normal(0, 0.5, (HID, IN))), param=True)
    bias1 = g.add_const("0.bias", f32(rng.normal(0, 0.5, (HID,))), param=True)
    w2 = g.add_const("2.weight", f32(rng.normal(0, 0.5, (CLASSES, HID))), param=True)
    bias2 = g.add_const("2.bias", f32(rng.normal(0, 0.5, (CLASSES,))), param=True)
    mm1 = emit(g, "MatMul", [x, w1], {"transpose_b": True}, name=f"{NET}/0/MatMul-op0").outputs[0]
    h = emit(g, "BiasAdd", [mm1, bias1], {"data_format": "NHWC"},
             name=f"{NET}/0/BiasAdd-op0").outputs[0]
    y = emit(g, "ReLU", [h], name=f"{NET}/1/ReLU-op0").outputs[0]
    if extra_reader:
        y = emit(g, "Add", [y, emit(g, "Add", [mm1, h], name=f"{NET}/Add-op0").outputs[0]],
                 name=f"{NET}/Add-op1").outputs[0]
    mm2 = emit(g, "MatMul", [y, w2], {"transpose_b": True}, name=f"{NET}/2/MatMul-op0").outputs[0]
    logits = emit(g, "BiasAdd", [mm2, bias2], {"data_format": "NHWC"},
                  name=f"{NET}/2/BiasAdd-op0").outputs[0]
    dl = emit(g, "SparseSoftmaxCrossEntropyWithLogits", [logits, label], {"is_grad": True},
              name=f"{GRAD}/SparseSoftmaxCrossEntropyWithLogits-op0").outputs[0]
    dy = emit(g, "MatMul", [dl, w2], name=f"{GRAD}/2/MatMul-op0").outputs[0]
    if not extra_reader:  # (with the Adds, y is not the ReLU output: no ReluGrad chain)
        dy = emit(g, "ReluGrad", [dy, y], name=f"{GRAD}/1/ReluGrad-op0").outputs[0]
    dw1 = emit(g, "MatMul", [dy, x], {"transpose_a": True}, name=f"{GRAD}/0/MatMul-op0").outputs[0]
    db1 = emit(g, "BiasAddGrad", [dy], {"data_format": "NHWC"},
               name=f"{GRAD}/0/BiasAddGrad-op0").outputs[0]
    dw2 = emit(g, "MatMul", [dl, y], {"transpose_a": True}, name=f"{GRAD}/2/MatMul-op1").outputs[0]
    db2 = emit(g, "BiasAddGrad", [dl], {"data_format": "NHWC"},
               name=f"{GRAD}/2/BiasAddGrad-op0").outputs[0]
    loss = emit(g, "SparseSoftmaxCrossEntropyWithLogits", [logits, label],
                name=f"{LOSS}/SparseSoftmaxCrossEntropyWithLogits-op0").outputs[0]
    a1 = emit(g, "Assign", [b1p, b1n], name=f"{scope}/Assign-op0").outputs[0]
    emit(g, "Assign", [b2p, b2n], name=f"{scope}/Assign-op1")
    for k, (p, grad) in enumerate([(w1, dw1), (bias1, db1), (w2, dw2), (bias2, db2)]):
        m = g.add_const(f"moment1.{p.name}", np.zeros_like(p.data), param=True)
        v = g.add_const(f"moment2.{p.name}", np.zeros_like(p.data), param=True)
        emit(g, "Adam", [p, m, v, b1n, b2n, lr, beta1, beta2, eps, grad],
             name=f"{scope}/Adam-op{k}")
    step = g.add_const("global_step", np.zeros(1, np.int32), param=True)
    one = g.add_const("data-3", np.ones(1, np.int32))
    emit(g, "AssignAdd", [step, one], name=f"{scope}/AssignAdd-op0")
    g.outputs = [loss, a1] if extra_reader else [loss]
    return g


def _kernels(ex) -> list[str]:
    return [c[0].__name__ for c in ex.calls]


def _feed(s, step: int):
    rng = np.random.default_rng(50 + step)
    data = (f32(rng.normal(0, 2, (N, IN))), rng.integers(0, CLASSES, N).astype(np.int32))
    for v, a in zip(s.inputs, data):
        s.current.array(v)[...] = a


def _state(s) -> dict[str, np.ndarray]:
    return {v.name: v.data.copy() for v in s.graph.values() if v.is_const}


def _equal_runs(graph_fn):
    fused, plain = Session(graph_fn()), Session(graph_fn())
    plain.train.set_fused({})  # the per-node kernels, as bound
    plain.eval.set_fused({})
    for step in range(4):
        for s in (fused, plain):
            s.train_mode = True
            _feed(s, step)
            s.run_step()
        a, b = _state(fused), _state(plain)
        for name in b:
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
        for v, w in zip(fused.roles.train_outputs, plain.roles.train_outputs):
            np.testing.assert_array_equal(fused.train.array(v), plain.train.array(w))
    outs = []
    for s in (fused, plain):
        s.train_mode = False
        _feed(s, 9)
        s.current.invoke(s.rt)
        outs.append([s.eval.array(v).copy() for v in s.roles.eval_outputs])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)
    return fused


def test_w1_layout_is_rewritten():
    s = Session(mlp_graph())
    assert _kernels(s.train) == [
        "_scalars", "_matmul_bias_relu", "_matmul_bias", "planned", "_matmul_relu_grad",
        "_matmul", "_bias_grad", "_matmul", "_bias_grad", "planned", "_scalars", "fused_adam"]
    # the step counter joined the beta-power Assigns across the fused Adam call
    assert len(s.train.calls[-2][3]["ops"]) == 3
    assert _kernels(s.eval) == ["_matmul_bias_relu", "_matmul_bias"]


def test_steps_equal_the_per_node_kernels():
    s = _equal_runs(mlp_graph)
    assert s.graph.value("global_step").data[0] == 4


def test_read_intermediates_are_not_fused_away():
    s = _equal_runs(lambda: mlp_graph(extra_reader=True))
    names = _kernels(s.train)
    assert "_matmul_bias_relu" not in names and "_matmul_relu_grad" not in names
    assert names.count("_matmul_bias") == 1  # only the second layer
    # the Assign output read after the step is still written: 3 updates, 4 calls
    (ops,) = [c[3]["ops"] for c in s.train.calls if c[0].__name__ == "_scalars"
              and len(c[3]["ops"]) > 2]
    assert [fn.__name__ for fn, _ in ops] == ["_copy_item", "_copy_item", "_copy_item",
                                              "_add_int_item"]


def test_traced_loop_gives_the_same_state():
    fused, traced = Session(mlp_graph()), Session(mlp_graph())
    seen = []
    for step in range(2):
        _feed(fused, step)
        fused.run_step()
        _feed(traced, step)
        traced.run_step(after=lambda node, ins, outs: seen.append(node.op))
    assert seen.count("BiasAdd") == 4 and seen.count("Assign") == 4
    a, b = _state(fused), _state(traced)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_integer_step_counter_wraps_as_the_ufunc():
    from todkit.runtime.rewrite_dense import _add_int_item

    for dt in (np.int32, np.int8, np.uint8, np.int64, np.uint16):
        info = np.iinfo(dt)
        for a, b in ((info.max, 1), (5, 7), (info.max, info.max), (info.min, info.min)):
            x, y = np.array([a], dt), np.array([b], dt)
            got = np.empty_like(x)
            _add_int_item(x, y, got, int(info.min), 1 << info.bits)
            with np.errstate(over="ignore"):
                assert got[0] == np.add(x, y)[0], (dt, a, b)


def test_a_scalar_run_does_not_move_an_update_past_a_node_reusing_its_bytes():
    # Hypothesis found it: Muls n6, n8 and n10 are one run at n6's step, and the planner put
    # n10's output in the bytes of n7's dead output: n7, between n6 and n8, wrote over
    # n10's result once n10 ran early (only the nodes after n8 were checked).
    g = Graph("scalars")
    in0 = g.add_input("in0", TensorType((1,), dtypes.float32))
    in1 = g.add_input("in1", TensorType((1,), dtypes.float32))
    v = {}
    for name, op, ins in [("n0", "Add", "in0 in0"), ("n1", "ReLU", "in0"),
                          ("n2", "Add", "in0 in0"), ("n3", "ReLU", "in0"),
                          ("n4", "ReLU", "in1"), ("n5", "Add", "in0 in0"),
                          ("n6", "Mul", "in0 in0"), ("n7", "Add", "in0 in1"),
                          ("n8", "Mul", "n4 n0"), ("n9", "Add", "in0 in0"),
                          ("n10", "Mul", "in1 in1"), ("n11", "Add", "in0 n8")]:
        args = [{"in0": in0, "in1": in1}.get(k) or v[k] for k in ins.split()]
        v[name] = emit(g, op, args, name=f"{name}/{op}").outputs[0]
    g.outputs = [v["n0"], v["n1"], v["n10"]]
    s = Session(g)
    s.array(in0)[...] = 0.125
    s.array(in1)[...] = -0.25
    s.run_step()
    np.testing.assert_array_equal(s.array(v["n10"]), np.float32(0.0625))
