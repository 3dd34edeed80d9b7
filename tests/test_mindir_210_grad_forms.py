"""MindSpore 2.10's own gradient forms: how the reader lowers them, how the converter writes
them to .ms, and what they compute (tests/test_reference_runs.py trains the real exports
against MindSpore's numbers; these pin the pieces)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from todkit.converter.lite_forms import sign_products_as_abs_grad
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


# -- tensor slicing, ops.split, ops.matmul -------------------------------------------------------
FORMS = Path(__file__).resolve().parent / "fixtures" / "mindir_forms"


def test_split_is_read_as_split_with_size_and_its_gradient_concat_keeps_the_zeros():
    g = mindir.read(REF / "split_momentum" / "train.mindir")
    (split,) = [n for n in g.nodes if n.op == "SplitWithSize"]
    assert split.attrs == {"split_size": (4, 4, 4, 4), "dim": 1}
    (cat,) = [n for n in g.nodes if n.op == "Concat"]
    assert cat.attrs["axis"] == 1 and len(cat.inputs) == 4
    # the unused fourth piece: 2.10 feeds its gradient as a constant of zeros
    assert cat.inputs[3].is_const and not cat.inputs[3].data.any()
    assert cat.inputs[3].type == TensorType((8, 4), dtypes.float32)


def test_matmul_ext_is_matmul_for_2d_operands_and_batch_matmul_otherwise():
    g = mindir.read(REF / "batchmatmul_momentum" / "train.mindir")
    ext = [n for n in g.nodes if n.name.split("/")[-1].startswith("MatMulExt")]
    got = [(n.op, tuple(v.type.shape for v in n.inputs)) for n in ext]
    assert got == [
        ("BatchMatMul", ((8, 3, 4), (4, 4))),      # a = h @ w
        ("BatchMatMul", ((8, 3, 4), (8, 4, 3))),   # a @ h^T
        ("BatchMatMul", ((8, 3, 3), (8, 3, 4))),   # d(a @ h^T) / da = dout @ h
        ("MatMul", ((4, 24), (24, 4))),            # dw = h^T @ da over the flattened batch
        ("BatchMatMul", ((8, 3, 4), (4, 4))),      # dh from a = da @ w^T
        ("BatchMatMul", ((8, 4, 3), (8, 3, 3))),   # d(h^T) = a^T @ dout
    ]
    assert all(n.attrs == {"transpose_a": False, "transpose_b": False} for n in ext)


def _lowered(op, shapes, rng):
    from todkit.formats.mindir.lowered import LOWERED
    g = Graph(op)
    vals = [g.add_input(f"in{i}", TensorType(s, dtypes.float32)) for i, s in enumerate(shapes)]
    node = LOWERED[op].lower(g, vals, {}, f"Default/{op}-op0")
    g.outputs = [node.outputs[0]]
    arrays = [rng.standard_normal(s).astype(np.float32) for s in shapes]
    (got,) = interpret(g, dict(zip(vals, arrays)), outputs=g.outputs)
    return g, node, arrays, got


def test_matmul_ext_of_1d_operands_matches_numpy_matmul():
    rng = np.random.default_rng(0)
    for shapes, ops in [(((4,), (2, 4, 3)), ["Reshape", "BatchMatMul", "Reshape"]),
                        (((2, 3, 4), (4,)), ["Reshape", "BatchMatMul", "Reshape"]),
                        (((4,), (4, 3)), ["Reshape", "MatMul", "Reshape"]),
                        (((3, 4), (4, 5)), ["MatMul"])]:
        g, node, (x, w), got = _lowered("MatMulExt", shapes, rng)
        assert [n.op for n in g.nodes] == ops and node.name == "Default/MatMulExt-op0"
        np.testing.assert_allclose(got, np.matmul(x, w), rtol=1e-6, atol=1e-6)


def test_a_strided_slice_with_an_ellipsis_mask_is_refused_naming_the_node(tmp_path):
    import pytest

    from todkit.core.errors import NotSupportedError
    from todkit.formats.mindir.schema import load_model
    m = load_model(FORMS / "concat.mindir")
    prims = {p.name: p.op_type for p in m.primitives}
    (node,) = [n for n in m.graph.node if n.op_type.startswith("REF::")
               and prims[n.op_type[5:]] == "StridedSlice"]
    # the ellipsis_mask attribute-input (x, begin, end, strides, begin_mask, end_mask, here)
    # pointed at a Constant 1 of the file (the begin_mask's)
    node.input[6] = node.input[4]
    path = tmp_path / "ellipsis.mindir"
    path.write_bytes(m.SerializeToString())
    with pytest.raises(NotSupportedError) as e:
        mindir.read(path)
    assert "StridedSlice-op0" in str(e.value) and "ellipsis_mask=1" in str(e.value)
    assert str(path) in str(e.value)


def test_slices_and_batched_products_travel_through_ms_with_their_numbers(tmp_path):
    g = Graph("slices")
    x = g.add_input("x", TensorType((4, 2, 12), dtypes.float32))
    w = g.add_const("w", np.linspace(-1, 1, 30, dtype=np.float32).reshape(6, 5), param=True)
    attrs = {"begin": (0, -1, 1), "end": (0, 0, -3), "strides": (1, 1, 2), "begin_mask": 1,
             "end_mask": 1, "shrink_axis_mask": 2}
    s = emit(g, "StridedSlice", [x], attrs, name="ss").outputs[0]            # (4, 4)
    r = emit(g, "Reshape", [s], {"shape": (2, 2, 4)}, name="r").outputs[0]
    t = emit(g, "StridedSliceGrad", [r], {"shapex": (2, 2, 12), "begin": (0, 0, 3),
                                          "end": (0, 0, 7), "strides": (1, 1, 1),
                                          "begin_mask": 3, "end_mask": 3}, name="ssg").outputs[0]
    y = emit(g, "StridedSlice", [t], {"begin": (0, 0, 0), "end": (0, 0, 6),
                                      "strides": (1, 1, 1), "begin_mask": 3, "end_mask": 3},
             name="ss2").outputs[0]                                           # (2, 2, 6)
    g.outputs = [emit(g, "BatchMatMul", [y, w], name="bmm").outputs[0]]      # (2, 2, 5)
    path = tmp_path / "slices.ms"
    ms.write(g, str(path))
    back = ms.read(path).graph
    assert [n.op for n in back.nodes] == ["StridedSlice", "Reshape", "StridedSliceGrad",
                                          "StridedSlice", "BatchMatMul"]
    assert back.nodes[0].attrs == {**attrs, "ellipsis_mask": 0, "new_axis_mask": 0}
    assert back.nodes[2].attrs["shapex"] == (2, 2, 12)
    xs = np.arange(96, dtype=np.float32).reshape(4, 2, 12)
    (want,) = interpret(g, {g.inputs[0]: xs}, outputs=g.outputs)
    (got,) = interpret(back, {back.inputs[0]: xs}, outputs=back.outputs)
    np.testing.assert_array_equal(got, want)
    rows = xs[:, 1, 1:9:2].reshape(2, 2, 4)
    full = np.zeros((2, 2, 12), np.float32)
    full[:, :, 3:7] = rows
    np.testing.assert_allclose(want, np.matmul(full[:, :, :6], w.data), rtol=1e-6)


def test_a_batched_matmul_fusion_with_a_bias_reads_as_a_bias_on_the_last_axis(tmp_path):
    from todkit.formats.ms import fbread, fbwrite
    g = Graph("b")
    x = g.add_input("x", TensorType((2, 3, 4), dtypes.float32))
    w = g.add_const("w", np.linspace(-1, 1, 20, dtype=np.float32).reshape(4, 5), param=True)
    g.outputs = [emit(g, "BatchMatMul", [x, w], name="bmm").outputs[0]]
    ms.write(g, str(tmp_path / "b.ms"))
    meta = fbread.decode((tmp_path / "b.ms").read_bytes(), "b")
    # as Lite's converter fuses an inference bias: a third MatMulFusion input
    bias = np.arange(5, dtype=np.float32)
    meta["allTensors"].append({**meta["allTensors"][2], "dims": np.array([5], np.int32),
                               "data": bias.tobytes(), "name": "bias"})
    node = meta["nodes"][0]
    node["inputIndex"] = np.append(node["inputIndex"], len(meta["allTensors"]) - 1)
    meta["subGraph"][0]["tensorIndices"] = np.arange(len(meta["allTensors"]), dtype=np.uint32)
    back = ms.read(fbwrite.encode(meta)).graph
    assert [(n.op, n.attrs.get("data_format")) for n in back.nodes] == \
        [("BatchMatMul", None), ("BiasAdd", "NHWC")]
    xs = np.linspace(-2, 2, 24, dtype=np.float32).reshape(2, 3, 4)
    (got,) = interpret(back, {back.inputs[0]: xs}, outputs=back.outputs)
    np.testing.assert_allclose(got, xs @ w.data + bias, rtol=1e-6)


def test_a_form_a_lowering_does_not_take_is_refused_naming_the_file_and_node():
    """tile.mindir's SumExt patched to sum into float64 (a casting sum, which todkit does not
    read): NotSupportedError naming the file and the node, not a generic read failure."""
    from todkit.core.errors import NotSupportedError
    from todkit.formats.mindir import reader, schema

    forms = Path(__file__).resolve().parent / "fixtures" / "mindir_forms"
    m = schema.load_model(str(forms / "tile.mindir"))
    prims = {p.name: p.op_type for p in m.primitives}
    sum_ext = next(n for n in m.graph.node
                   if n.op_type.startswith("REF::") and prims[n.op_type[5:]] == "SumExt")
    const = next(n for n in m.graph.node if n.op_type == "Constant"
                 and (n.output[0] if n.output else n.name) == sum_ext.input[3])
    next(a for a in const.attribute if a.name == "value").i = 44  # TypeId float64
    with pytest.raises(NotSupportedError) as e:
        reader.read_bytes(m.SerializeToString(), "tile_f64.mindir")
    message = str(e.value)
    assert message.startswith("tile_f64.mindir: node ") and "SumExt-op0" in message
    assert "casting sums are not supported" in message
