"""nn.Embedding, nn.BCEWithLogitsLoss, nn.SiLU and nn.AdaptiveAvgPool2d(1) as MindSpore 2.10
exports them: how the reader takes their ops (opset/extra_layers.py and the lowerings in
formats/mindir/lowered.LOWERED), what the lowered forms compute, how the .ms carries them,
and which variants fail with a clear error. tests/test_reference_runs.py trains the real
exports (tests/fixtures/reference/{embedding, bce_logits, bce_logits_weights, silu,
adaptive_avgpool}_momentum) against MindSpore's numbers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from todkit.autodiff import add_backward
from todkit.converter.convert import convert
from todkit.core import dtypes
from todkit.core.errors import NotSupportedError
from todkit.formats import mindir, ms
from todkit.formats.mindir.lowered import LOWERED
from todkit.formats.mindir.schema import load_model
from todkit.formats.ms import optable as ms_optable
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret

REF = Path(__file__).resolve().parent / "fixtures" / "reference"
F32 = dtypes.float32


def _lower(op, graph, values, name="Default/net/loss-op0", **attrs):
    return LOWERED[op].lower(graph, values, attrs, name)


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# -- nn.Embedding: Gather, and UnsortedSegmentSum as its gradient ----------------------------
def test_embedding_gradient_is_read_and_written_as_unsorted_segment_sum(tmp_path):
    g = mindir.read(REF / "embedding_momentum" / "train.mindir")
    (uss,) = [n for n in g.nodes if n.op == "UnsortedSegmentSum"]
    (gather,) = [n for n in g.nodes if n.op == "Gather"]
    assert uss.attrs == {"num_segments": 20}
    assert uss.inputs[1] is gather.inputs[1]  # the same flattened token ids
    assert uss.outputs[0].type == gather.inputs[0].type == TensorType((20, 4), F32)
    out = convert(str(REF / "embedding_momentum" / "train.mindir"), str(tmp_path / "emb"), True)
    (back,) = [n for n in ms.read(out).graph.nodes if n.op == "UnsortedSegmentSum"]
    assert back.attrs == {"num_segments": 20}
    assert ms_optable.BY_IR["UnsortedSegmentSum"].ms == "UnsortedSegmentSum"


def test_gather_gradient_is_mindspores_unsorted_segment_sum():
    g = Graph("emb")
    table = g.add_const("table", np.arange(12, dtype=np.float32).reshape(6, 2), param=True)
    ids = g.add_input("ids", TensorType((2, 3), dtypes.int32))
    y = emit(g, "Gather", [table, ids], name="Default/Gather-op0").outputs[0]
    loss = emit(g, "ReduceSum", [y], {"axis": ()}).outputs[0]
    grads = add_backward(g, loss, [table], g.add_const("sens", np.array(1.0, np.float32)))
    ops = [n.op for n in g.nodes]
    assert "UnsortedSegmentSum" in ops and "OneHot" not in ops and "MatMul" not in ops
    idx = np.array([[5, 0, 5], [5, 1, 0]], np.int32)
    (d,) = interpret(g, {ids: idx}, outputs=[grads[table]])
    # each row's gradient counts how often the row was gathered
    np.testing.assert_array_equal(d[:, 0], [2, 1, 0, 0, 0, 3])


# -- nn.SiLU: Lite's swish activation; its gradient in ops Lite has ---------------------------
def test_silu_is_the_swish_activation_and_its_gradient_uses_lite_kernels(tmp_path):
    g = mindir.read(REF / "silu_momentum" / "train.mindir")
    assert g.op_counts().get("SiLU") == 1 and "SiLUGrad" not in g.op_counts()
    grad_nodes = sorted(n.op for n in g.nodes if "Grad_SiLU" in n.name)
    assert grad_nodes == ["Add", "Mul", "Mul", "Sigmoid", "SigmoidGrad"]
    row = ms_optable.BY_IR["SiLU"]
    assert (row.ms, row.select) == ("Activation", {"activation_type": ms_optable.ACT["SWISH"]})
    out = convert(str(REF / "silu_momentum" / "train.mindir"), str(tmp_path / "silu"), True)
    assert ms.read(out).graph.op_counts().get("SiLU") == 1


def test_silu_grad_lowering_is_mindspores_formula():
    g = Graph("silu")
    dout = g.add_input("dout", TensorType((3, 4), F32))
    x = g.add_input("x", TensorType((3, 4), F32))
    node = _lower("SiLUGrad", g, [dout, x], name="Gradients/SiLUGrad-op0")
    assert node.name == "Gradients/SiLUGrad-op0"
    rng = np.random.default_rng(0)
    xv = (rng.standard_normal((3, 4)) * 4).astype(np.float32)
    dv = rng.standard_normal((3, 4)).astype(np.float32)
    (got,) = interpret(g, {dout: dv, x: xv}, outputs=[node.outputs[0]])
    x64 = xv.astype(np.float64)
    s = _sigmoid(x64)
    np.testing.assert_allclose(got, dv * (s + x64 * s * (1 - s)), rtol=1e-5, atol=1e-6)


# -- nn.BCEWithLogitsLoss: SigmoidCrossEntropyWithLogits (+ Grad), weight, the reduction -------
def _bce_graph(reduction, weight=None, pos_weight=None, shape=(4, 3)):
    g = Graph("bce")
    x = g.add_input("x", TensorType(shape, F32))
    y = g.add_input("y", TensorType(shape, F32))
    loss = _lower("BCEWithLogitsLoss", g, [x, y], name="Default/loss_fn/BCEWithLogitsLoss-op0",
                  weight=weight, pos_weight=pos_weight, reduction=reduction).outputs[0]
    dshape = shape if reduction == "none" else ()
    dout = g.add_input("dout", TensorType(dshape, F32))
    dx = _lower("BinaryCrossEntropyWithLogitsBackward", g, [dout, x, y],
                name="Gradients/BinaryCrossEntropyWithLogitsBackward-op0",
                weight=weight, pos_weight=pos_weight, reduction=reduction).outputs[0]
    return g, (x, y, dout), loss, dx


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("weights", ["none", "weight", "pos_weight", "both"])
def test_bce_with_logits_lowering_computes_mindspores_loss_and_gradient(reduction, weights):
    rng = np.random.default_rng(1)
    w = rng.uniform(0.5, 2.0, (3,)).astype(np.float32) if weights in ("weight", "both") \
        else None
    p = rng.uniform(0.2, 3.0, (4, 1)).astype(np.float32) if weights in ("pos_weight", "both") \
        else None
    g, (x, y, dout), loss, dx = _bce_graph(reduction, weight=w, pos_weight=p)
    xv = (rng.standard_normal((4, 3)) * 3).astype(np.float32)
    xv[0, :2] = (-30.0, 30.0)  # where exp(-x) or exp(x) alone would overflow float32's range
    yv = rng.uniform(0, 1, (4, 3)).astype(np.float32)
    dv = rng.standard_normal(() if reduction != "none" else (4, 3)).astype(np.float32)
    got_loss, got_dx = interpret(g, {x: xv, y: yv, dout: dv}, outputs=[loss, dx])
    x64, y64 = xv.astype(np.float64), yv.astype(np.float64)
    w64 = np.ones(3) if w is None else w.astype(np.float64)
    p64 = np.ones((4, 1)) if p is None else p.astype(np.float64)
    # MindSpore's definition: -w (p y log sigmoid(x) + (1 - y) log(1 - sigmoid(x))), with
    # log sigmoid(x) = -log1p(exp(-x)) and log(1 - sigmoid(x)) = -log1p(exp(x))
    elem = w64 * (p64 * y64 * np.log1p(np.exp(-x64)) + (1 - y64) * np.log1p(np.exp(x64)))
    want_loss = {"mean": elem.mean(), "sum": elem.sum(), "none": elem}[reduction]
    spread = dv if reduction == "none" else np.full((4, 3), dv / (12.0 if reduction == "mean"
                                                                 else 1.0))
    # d/dx: w ((1 - y) sigmoid(x) - p y (1 - sigmoid(x)))
    want_dx = w64 * ((1 - y64) * _sigmoid(x64) - p64 * y64 * (1 - _sigmoid(x64))) * spread
    np.testing.assert_allclose(got_loss, want_loss, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got_dx, want_dx, rtol=1e-5, atol=1e-6)
    # the node standing for the file's keeps the file's name (roles find the loss by it)
    assert loss.producer.name == "Default/loss_fn/BCEWithLogitsLoss-op0"


def test_bce_with_logits_of_ones_weights_is_the_plain_form():
    ones = np.ones(3, np.float32)
    g, *_ = _bce_graph("mean", weight=ones, pos_weight=ones)
    assert [n.op for n in g.nodes] == [
        "SigmoidCrossEntropyWithLogits", "ReduceMean",
        "Reshape", "Tile", "RealDiv", "SigmoidCrossEntropyWithLogitsGrad"]


def test_bce_with_logits_reads_the_real_export_as_lite_ops():
    g = mindir.read(REF / "bce_logits_momentum" / "train.mindir")
    ops = g.op_counts()
    assert ops.get("SigmoidCrossEntropyWithLogits") == 1
    assert ops.get("SigmoidCrossEntropyWithLogitsGrad") == 1
    assert "BCEWithLogitsLoss" not in ops and "BinaryCrossEntropyWithLogitsBackward" not in ops


@pytest.mark.parametrize("op", ["BCEWithLogitsLoss", "BinaryCrossEntropyWithLogitsBackward"])
def test_bce_with_logits_weights_not_broadcasting_fail_naming_the_node(op):
    g = Graph("bce")
    x = g.add_input("x", TensorType((4, 3), F32))
    y = g.add_input("y", TensorType((4, 3), F32))
    ins = [x, y] if op == "BCEWithLogitsLoss" else [g.add_input("d", TensorType((), F32)), x, y]
    name = f"Default/loss_fn/{op}-op0"
    for what in ("weight", "pos_weight"):
        bad = {"weight": None, "pos_weight": None, what: np.full(4, 2.0, np.float32)}
        with pytest.raises(NotSupportedError, match=f"{name}.*{what} of shape.*broadcast"):
            _lower(op, g, ins, name=name, reduction="mean", **bad)
    # one that broadcasts with the logits to a larger shape is refused too
    with pytest.raises(NotSupportedError, match="does not broadcast"):
        _lower(op, g, ins, name=name, reduction="mean", pos_weight=None,
               weight=np.full((2, 4, 3), 2.0, np.float32))


# -- nn.AdaptiveAvgPool2d: output size 1 is ReduceMean; other sizes fail clearly ---------------
def test_adaptive_avg_pool_of_one_is_reduce_mean_and_its_gradient_tile_and_divide():
    g = mindir.read(REF / "adaptive_avgpool_momentum" / "train.mindir")
    (mean,) = [n for n in g.nodes if "AdaptiveAvgPool2D-op" in n.name and "Grad" not in n.name]
    assert (mean.op, mean.attrs) == ("ReduceMean", {"axis": (2, 3), "keep_dims": True})
    grad = [n for n in g.nodes if "AdaptiveAvgPool2DGrad" in n.name]
    assert [n.op for n in grad] == ["Tile", "RealDiv"]
    assert grad[0].attrs == {"multiples": (1, 1, 8, 8)}
    assert float(grad[1].inputs[1].data) == 64.0


def test_adaptive_avg_pool_output_size_none_keeps_an_extent_of_one():
    g = Graph("p")
    x = g.add_input("x", TensorType((2, 3, 1, 5), F32))
    node = _lower("AdaptiveAvgPool2D", g, [x], name="Default/pool-op0", output_size=(None, 1))
    assert node.op == "ReduceMean" and node.outputs[0].type.shape == (2, 3, 1, 1)


@pytest.mark.parametrize("size", [(2, 2), 3, (None, 1)])
def test_adaptive_avg_pool_to_another_size_fails_naming_the_node(size):
    g = Graph("p")
    x = g.add_input("x", TensorType((2, 3, 4, 4), F32))
    with pytest.raises(NotSupportedError, match="Default/pool-op0.*output size"):
        _lower("AdaptiveAvgPool2D", g, [x], name="Default/pool-op0", output_size=size)
    dy = g.add_input("dy", TensorType((2, 3, 2, 2), F32))
    with pytest.raises(NotSupportedError, match="Default/pool-grad-op0.*output size 1"):
        _lower("AdaptiveAvgPool2DGrad", g, [dy], name="Default/pool-grad-op0",
               x_shape=(2, 3, 4, 4))


def test_a_real_export_pooling_to_two_fails_to_convert_naming_the_node(tmp_path):
    model = load_model(REF / "adaptive_avgpool_momentum" / "train.mindir")
    (prim,) = [p for p in model.primitives if p.op_type == "AdaptiveAvgPool2D"]
    (size,) = [a for a in prim.attribute if a.name == "output_size"]
    for v in size.values:
        v.ints[:] = [2]
    path = tmp_path / "pool2.mindir"
    path.write_bytes(model.SerializeToString())
    with pytest.raises(NotSupportedError, match=r"AdaptiveAvgPool2D-op\d+'.*\[2, 2\]"):
        convert(str(path), str(tmp_path / "pool2"), True)
