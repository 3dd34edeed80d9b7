"""MindSpore 2.10's own gradient forms: how the reader lowers them, how the converter writes
them to .ms, and what they compute (tests/test_reference_runs.py trains the real exports
against MindSpore's numbers; these pin the pieces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from todkit.converter.passes import sign_products_as_abs_grad
from todkit.core import dtypes
from todkit.formats import mindir, ms
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret

REF = Path(__file__).resolve().parent / "fixtures" / "reference"


def test_scalar_forms_are_read_as_ops_with_a_constant_of_x_dtype():
    g = mindir.read(REF / "mlp_mse_momentum" / "train.mindir")
    ops = g.op_counts()
    assert "Muls" not in ops and "PowTensorScalar" not in ops
    grad_square = [n for n in g.nodes if "Grad_Square" in n.name]
    assert sorted(n.op for n in grad_square) == ["Mul", "Mul", "Pow"]
    for n in grad_square:
        consts = [v for v in n.inputs if v.is_const]
        for c in consts:
            assert c.data.shape == () and c.data.dtype == np.float32
    # MindSpore's PowTensorScalar(x, 1) and Muls(., 2): the exponent 1 and the factor 2
    assert sorted(float(v.data) for n in grad_square for v in n.inputs
                  if v.is_const and v.data.shape == ()) == [1.0, 2.0]


def test_fillv2_is_read_with_the_value_as_a_tensor_and_the_shape_as_an_attribute():
    g = mindir.read(REF / "leakyrelu_momentum" / "train.mindir")
    (fill,) = [n for n in g.nodes if n.op == "FillV2"]
    assert fill.attrs["shape"] == (8, 12)
    assert fill.inputs[0].is_const and float(fill.inputs[0].data) == 0.0
    assert fill.outputs[0].type == TensorType((8, 12), dtypes.float32)


def _sign_times(reads_twice: bool) -> Graph:
    g = Graph("l1")
    x = g.add_input("x", TensorType((2, 3), dtypes.float32))
    d = g.add_input("d", TensorType((2, 3), dtypes.float32))
    s = emit(g, "Sign", [x], name="Gradients/Grad_Abs/Sign-op0").outputs[0]
    y = emit(g, "Mul", [d, s], name="Gradients/Grad_Abs/Mul-op0").outputs[0]
    g.outputs = [y]
    if reads_twice:
        g.outputs.append(emit(g, "Neg", [s], name="n").outputs[0])
    return g


def test_sign_times_dout_becomes_abs_grad_with_the_same_numbers():
    g = _sign_times(False)
    x = np.array([[-2.0, 0.0, 3.0], [0.5, -0.1, 7.0]], np.float32)
    d = np.arange(6, dtype=np.float32).reshape(2, 3) - 2.5
    before = interpret(g, {g.inputs[0]: x, g.inputs[1]: d}, outputs=g.outputs)[0]
    sign_products_as_abs_grad(g)
    assert [n.op for n in g.nodes] == ["AbsGrad"]
    assert g.nodes[0].inputs == [g.inputs[0], g.inputs[1]]
    after = interpret(g, {g.inputs[0]: x, g.inputs[1]: d}, outputs=g.outputs)[0]
    np.testing.assert_array_equal(after, before)


def test_a_sign_read_elsewhere_stays_and_travels_as_the_sign_activation(tmp_path):
    g = _sign_times(True)
    sign_products_as_abs_grad(g)
    assert sorted(n.op for n in g.nodes) == ["Mul", "Neg", "Sign"]
    path = tmp_path / "sign.ms"
    ms.write(g, str(path))
    back = ms.read(path).graph
    assert sorted(n.op for n in back.nodes) == ["Mul", "Neg", "Sign"]


def test_elu_and_fill_round_trip_through_ms(tmp_path):
    g = Graph("elu")
    x = g.add_input("x", TensorType((2, 3), dtypes.float32))
    y = emit(g, "Elu", [x], {"alpha": 0.5}, name="e").outputs[0]
    dx = emit(g, "EluGrad", [x, y], {"alpha": 0.5}, name="eg").outputs[0]
    z = g.add_const("zero", np.zeros((), np.float32))
    f = emit(g, "FillV2", [z], {"shape": (2, 3)}, name="f").outputs[0]
    c = emit(g, "Less", [dx, f], name="lt").outputs[0]
    g.outputs = [emit(g, "Select", [c, dx, f], name="sel").outputs[0]]
    path = tmp_path / "elu.ms"
    ms.write(g, str(path))
    back = ms.read(path).graph
    assert [n.op for n in back.nodes] == ["Elu", "EluGrad", "FillV2", "Less", "Select"]
    assert back.nodes[0].attrs["alpha"] == 0.5 and back.nodes[1].attrs["alpha"] == 0.5
    assert back.nodes[2].attrs["shape"] == (2, 3)
    xs = np.array([[-1.0, 0.5, 2.0], [-0.2, -3.0, 1.0]], np.float32)
    want = interpret(g, {g.inputs[0]: xs}, outputs=g.outputs)[0]
    got = interpret(back, {back.inputs[0]: xs}, outputs=back.outputs)[0]
    np.testing.assert_array_equal(got, want)
