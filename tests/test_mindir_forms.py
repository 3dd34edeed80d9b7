"""Op forms against real MindSpore 2.10 exports (tests/fixtures/mindir_forms, made by
scripts/make_mindir_forms.py). For each checked op: the node in MindSpore's file has the
primitive type, tensor inputs and attribute-input constants our MINDIR op table expects (and
they map to the IR attributes listed here), and our writer lays the same op out the same way.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from todkit import opset
from todkit.core import dtypes
from todkit.formats import mindir
from todkit.formats.mindir.optable import spec_for
from todkit.formats.mindir.schema import PrimType, load_model
from todkit.formats.mindir.values import decode
from todkit.ir.graph import Graph, TensorType

FORMS = Path(__file__).resolve().parent / "fixtures" / "mindir_forms"
F32 = dtypes.float32


def _layout(path, op):
    """[(prim_type, inputs)] of every ``op`` node: an input is "T" (a tensor computed or a
    parameter), a decoded Constant value, or "tuple" (a MakeTuple of tensors)."""
    m = load_model(path)
    prims = {p.name: p for p in m.primitives}
    consts, tuples, found = {}, set(), []
    for n in m.graph.node:
        out = n.output[0] if n.output else n.name
        if n.op_type == "Constant":
            value = next(a for a in n.attribute if a.name == "value")
            consts[out] = decode(value, path)
            continue
        prim = prims[n.op_type[len("REF::"):]]
        if prim.op_type == "MakeTuple":
            tuples.add(out)
        if prim.op_type != op:
            continue
        ins = []
        for i in n.input:
            if i in tuples:
                ins.append("tuple")
            elif i in consts and not hasattr(consts[i], "shape"):
                ins.append(consts[i])
            elif i in consts and consts[i].dtype.kind in "iu" and consts[i].ndim == 0:
                ins.append(int(consts[i]))
            else:
                ins.append("T")
        found.append((prim.prim_type, [x for x in ins if not _is_monad(x)]))
    return found


def _is_monad(x):
    return type(x).__name__ == "Monad"


def _normal(v):
    return tuple(v) if isinstance(v, list) else v


# (fixture, op, input types for our writer, IR attrs MindSpore's attribute-inputs map to)
T24 = TensorType((2, 4), F32)
# x[:, 1:3] as 2.10 exports it: axis 0 taken whole through the begin and end masks
SLICE_MASKS = {"begin_mask": 1, "end_mask": 1, "ellipsis_mask": 0, "new_axis_mask": 0,
               "shrink_axis_mask": 0}
CHECKED = [
    ("softmax", "Softmax", [T24], {"axis": (-1,)}),
    ("log_softmax", "LogSoftmax", [T24], {"axis": -1}),
    ("squeeze", "Squeeze", [TensorType((2, 1, 4), F32)], {"axis": (1,)}),
    ("squeeze", "ExpandDims", [T24], {"axis": 1}),
    ("tile", "Tile", [T24], {"multiples": (1, 2)}),
    ("reduce_sum", "ReduceSum", [T24], {"axis": (1,), "keep_dims": True, "skip_mode": False}),
    ("tile", "Reshape", [TensorType((2, 8), F32)], {"shape": (1, 2, 2, 4)}),
    ("sqrt_exp_log", "Sqrt", [T24], {}),
    ("sqrt_exp_log", "Exp", [T24], {}),
    ("sqrt_exp_log", "Log", [T24], {}),
    ("sqrt_exp_log", "SqrtGrad", [T24, T24], {}),
    ("maximum_minimum", "Maximum", [T24, TensorType((), F32)], {}),
    ("maximum_minimum", "Minimum", [T24, T24], {}),
    ("relu6", "ReLU6", [T24], {}), ("relu6", "ReLU6Grad", [T24, T24], {}),
    ("hswish", "HSwish", [T24], {}), ("hswish", "HSwishGrad", [T24, T24], {}),
    ("hsigmoid", "HSigmoid", [T24], {}), ("hsigmoid", "HSigmoidGrad", [T24, T24], {}),
    ("sigmoid_cross_entropy", "SigmoidCrossEntropyWithLogits", [T24, T24], {}),
    ("sigmoid_cross_entropy", "SigmoidCrossEntropyWithLogitsGrad", [T24, T24, T24], {}),
    ("concat", "Concat", [T24, TensorType((2, 2), F32)], {"axis": 1}),
    ("cast", "Cast", [T24], {"to": 42}),
    ("pow", "Pow", [T24, T24], {}),
    ("gelu_tanh", "GeLU", [T24], {}),
    ("gelu_tanh", "GeLUGrad", [T24, T24, T24], {}),
    ("smooth_l1_loss", "SmoothL1Loss", [T24, T24], {"beta": 1.0, "reduction": "none"}),
    ("smooth_l1_loss", "SmoothL1LossGrad", [T24, T24, T24], {"beta": 1.0, "reduction": "none"}),
    ("nll_loss_primitive", "NLLLoss",
     [T24, TensorType((2,), dtypes.int32), TensorType((4,), F32)],
     {"reduction": "mean", "ignore_index": -100}),
    ("nll_loss_primitive", "NLLLossGrad",
     [T24, TensorType((), F32), TensorType((2,), dtypes.int32), TensorType((4,), F32),
      TensorType((), F32)], {"reduction": "mean", "ignore_index": -100}),
    ("sparse_ce_none", "SoftmaxCrossEntropyWithLogits", [T24, T24], {}),
    ("adam_weight_decay", "AdamWeightDecay",
     [T24, T24, T24] + [TensorType((), F32)] * 5 + [T24], {"use_locking": False}),
    # tensor slicing (concat's x[:, 1:3]) and ops.BatchMatMul
    ("concat", "StridedSlice", [T24], {"begin": (0, 1), "end": (0, 3), "strides": (1, 1),
                                        **SLICE_MASKS}),
    ("concat", "StridedSliceGrad", [TensorType((2, 2), F32)],
     {"shapex": (2, 4), "begin": (0, 1), "end": (0, 3), "strides": (1, 1), **SLICE_MASKS}),
    ("batch_matmul", "BatchMatMul", [TensorType((2, 2, 2), F32)] * 2,
     {"transpose_a": False, "transpose_b": True}),
    # nn.PReLU, nn.Mish (its gradient's Softplus), nn.Dropout2d
    ("prelu", "PReLU", [T24, TensorType((1,), F32)], {}),
    ("prelu", "PReLUGrad", [T24, T24, TensorType((1,), F32)], {}),
    ("mish", "Softplus", [T24], {}),
    ("dropout2d", "Dropout2D", [TensorType((2, 2, 1, 2), F32)], {"keep_prob": 0.5}),
]


def _ours(op, in_types, attrs, tmp_path):
    g = Graph("one")
    ins = []
    for i, t in enumerate(in_types):
        if op == "AdamWeightDecay" and i < 3:  # optimizer state lives in parameters
            ins.append(g.add_const(f"p{i}", np.zeros(t.shape, t.dtype.np), param=True))
        else:
            ins.append(g.add_input(f"in{i}", t))
    node = opset.emit(g, op, ins, attrs, name=f"Default/{op}-op0")
    g.outputs = [node.outputs[0]] if not opset.get_op(op).side_effect else []
    if not g.outputs:
        g.outputs = [opset.emit(g, "Neg", [ins[-1]]).outputs[0]]
    path = tmp_path / "one.mindir"
    mindir.write(g, path)
    return _layout(path, op)


@pytest.mark.parametrize("fixture,op,in_types,attrs", CHECKED,
                         ids=[f"{c[0]}:{c[1]}" for c in CHECKED])
def test_mindspore_layout_maps_to_our_table_and_our_writer_matches(fixture, op, in_types,
                                                                   attrs, tmp_path):
    theirs = _layout(FORMS / f"{fixture}.mindir", op)
    assert theirs, f"{op} not in {fixture}.mindir"
    spec = spec_for(op)
    prim_type, ins = theirs[0]
    want_type = PrimType.PRIMITIVE_FUNCTION if spec.function else PrimType.PRIMITIVE
    assert prim_type == want_type
    tensors = 1 if spec.tuple_input else spec.inputs
    assert all(x in ("T", "tuple") for x in ins[:tensors]), ins
    n = tensors + len(spec.attr_inputs)
    # Side-effect ops end with the UpdateState monad (an input computed in the graph).
    assert len(ins) == n or (spec.extra.get("side_effect_mem") and ins[n:] == ["T"]), ins
    ins = ins[:n]
    read = {a.ir: a.read(v) for a, v in zip(spec.attr_inputs, ins[tensors:])}
    assert {k: _normal(v) for k, v in read.items()} == \
        {a.ir: attrs[a.ir] for a in spec.attr_inputs}
    ours = _ours(op, in_types, attrs, tmp_path)
    assert ours[0][0] == prim_type
    assert [("T" if x in ("T", "tuple") else _normal(x)) for x in ours[0][1][:n]] == \
        [("T" if x in ("T", "tuple") else _normal(x)) for x in ins]


# Files made only of ops todkit reads: our reader takes the whole train graph. (sparse_ce_none
# needs OneHot's interleaved attribute-inputs.)
WHOLE = ["adam_weight_decay", "cast", "gelu_tanh", "hsigmoid", "hswish", "log_softmax",
         "maximum_minimum", "nll_loss_primitive", "pow", "reduce_sum", "relu6",
         "sigmoid_cross_entropy", "smooth_l1_loss", "softmax", "sqrt_exp_log", "squeeze", "tile",
         "concat", "split", "matmul_ext", "batch_matmul", "prelu", "mish", "dropout2d"]


@pytest.mark.parametrize("fixture", WHOLE)
def test_reader_takes_the_whole_real_export(fixture):
    g = mindir.read(FORMS / f"{fixture}.mindir")
    opset.verify(g, fixture)
    assert g.nodes
