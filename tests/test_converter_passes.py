"""Unit tests of the converter's graph passes (todkit/converter/passes.py, nhwc.py)."""

from __future__ import annotations

import numpy as np

from todkit.converter.passes import order_like_exporter
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit, verify


def test_in_place_update_waits_for_readers_of_the_old_value():
    """The exporter walk would reach the Assign first (it feeds the output's input 0); the
    ordering rule still puts the MatMul that reads the weight's old contents before it."""
    g = Graph("inplace")
    x = g.add_input("x", TensorType((2, 2), dtypes.from_numpy(np.dtype(np.float32))))
    w = g.add_const("w", np.eye(2, dtype=np.float32), param=True)
    new_w = g.add_const("new_w", np.full((2, 2), 5, np.float32))
    assign = emit(g, "Assign", [w, new_w], name="assign")
    matmul = emit(g, "MatMul", [x, w], name="matmul")
    out = emit(g, "Add", [assign.outputs[0], matmul.outputs[0]], name="add")
    g.outputs = [out.outputs[0]]
    g.nodes = [assign, matmul, out]
    order_like_exporter(g)
    assert [n.name for n in g.nodes] == ["matmul", "assign", "add"]
    verify(g)


def test_without_a_mutation_the_walk_is_inputs_first():
    g = Graph("plain")
    x = g.add_input("x", TensorType((2, 2), dtypes.from_numpy(np.dtype(np.float32))))
    w = g.add_const("w", np.eye(2, dtype=np.float32), param=True)
    a = emit(g, "Mul", [w, w], name="a")
    m = emit(g, "MatMul", [x, w], name="m")
    out = emit(g, "Add", [a.outputs[0], m.outputs[0]], name="add")
    g.outputs = [out.outputs[0]]
    g.nodes = [m, a, out]
    order_like_exporter(g)
    assert [n.name for n in g.nodes] == ["a", "m", "add"]


def test_without_train_model_a_dropout_whose_mask_is_read_stays(tmp_path):
    """A train MINDIR converted with --trainModel=false: Dropout is removed only where nothing
    reads its mask (the reference run's DropoutGrad reads it: removing it left an invalid
    graph, "input ... is not produced before it")."""
    from pathlib import Path

    from todkit.converter.convert import convert
    from todkit.formats import ms

    run = Path(__file__).resolve().parent / "fixtures" / "reference" / "depthwise_avgpool_dropout"
    g = ms.read(convert(str(run / "train.mindir"), str(tmp_path / "m"), False)).graph
    ops = g.op_counts()
    assert ops["Dropout"] == 1 and ops["DropoutGrad"] == 1


def test_without_train_model_an_unread_mask_lets_dropout_go(tmp_path):
    from todkit.converter.convert import lite_passes

    g = Graph("infer")
    x = g.add_input("x", TensorType((2, 3), dtypes.float32))
    y, _mask = emit(g, "Dropout", [x], {"keep_prob": 0.5}).outputs
    g.outputs = [emit(g, "ReLU", [y]).outputs[0]]
    assert [n.op for n in lite_passes(g, False).nodes] == ["ReLU"]
