"""Fused Conv2DFusion/MatMulFusion writing (todkit/formats/ms/fuse.py, write.py) and the
converter's choice of what to fuse (todkit/converter/fusion.py)."""

from __future__ import annotations

import numpy as np

from todkit.converter.fusion import converter_fusions, mark_train_ops
from todkit.core import dtypes
from todkit.formats import ms
from todkit.formats.ms import fbread
from todkit.formats.ms.fuse import find_fusions
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret

F32 = dtypes.from_numpy(np.dtype(np.float32))


def dense_relu(extra_reader: bool = False) -> Graph:
    rng = np.random.default_rng(0)
    g = Graph("dense")
    x = g.add_input("x", TensorType((2, 3), F32))
    w = g.add_const("w", rng.standard_normal((4, 3)).astype(np.float32), param=True)
    b = g.add_const("b", rng.standard_normal(4).astype(np.float32), param=True)
    mm = emit(g, "MatMul", [x, w], {"transpose_b": True}, name="fc/MatMul-op0")
    ba = emit(g, "BiasAdd", [mm.outputs[0], b], name="fc/BiasAdd-op0")
    act = emit(g, "ReLU", [ba.outputs[0]], name="relu/ReLU-op0")
    g.outputs = [act.outputs[0]]
    if extra_reader:
        g.outputs.append(emit(g, "Neg", [mm.outputs[0]], name="neg").outputs[0])
    return g


def test_matmul_bias_relu_is_written_as_one_node_and_read_back_as_three():
    g = dense_relu()
    fusions = find_fusions(g)
    assert [[n.name for n in f.nodes] for f in fusions] == [
        ["fc/MatMul-op0", "fc/BiasAdd-op0", "relu/ReLU-op0"]]
    raw = ms.dumps(g, fusions=fusions)
    meta = fbread.decode(raw, "fused")
    (node,) = meta["nodes"]
    names = [meta["allTensors"][int(i)]["name"] for i in node["inputIndex"]]
    assert node["name"] == "fc/MatMul-op0" and names == ["x", "w", "b"]
    assert int(node["primitive"]["value"]["activation_type"]) == 1  # RELU
    # the graph output keeps its name
    assert meta["allTensors"][int(node["outputIndex"][0])]["name"] == "relu/ReLU-op0"
    back = ms.read(raw).graph
    assert [n.op for n in back.nodes] == ["MatMul", "BiasAdd", "ReLU"]
    x = np.random.default_rng(1).standard_normal((2, 3)).astype(np.float32)
    want = interpret(g, {g.inputs[0]: x})[0]
    got = interpret(back, {back.inputs[0]: x})[0]
    np.testing.assert_array_equal(got, want)


def test_a_value_read_twice_is_not_fused_away():
    g = dense_relu(extra_reader=True)
    assert find_fusions(g) == []  # the MatMul's output is also read by Neg


def test_nodes_sharing_a_weight_with_an_optimizer_are_train_marked_and_not_fused():
    g = dense_relu()
    fc_w = g.value("w")
    lr = g.add_const("learning_rate", np.array(0.1, np.float32), param=True)
    grad = g.add_const("grad", np.zeros((4, 3), np.float32))
    emit(g, "SGD", [fc_w, grad, lr, g.add_const("accum", np.zeros((4, 3), np.float32),
                                                 param=True),
                    g.add_const("momentum", np.array(0.0, np.float32), param=True),
                    g.add_const("stat", np.ones((4, 3), np.float32), param=True)],
         name="Default/optimizer-SGD/SGD-op0")
    marked = mark_train_ops(g)
    assert id(g.node("fc/MatMul-op0")) in marked
    # the BiasAdd and ReLU are not marked, but the chain starts at the MatMul
    assert converter_fusions(g) == []
