"""The one table between IR ops (docs/OPS.md) and MINDIR primitives, read and written alike.

Per op: whether MindSpore 2.x writes it as a PRIMITIVE_FUNCTION, how many tensor inputs it
takes, which IR attributes travel as extra Constant inputs (2.x "attribute-inputs"), which
live in the PrimitiveProto (classic attributes, and the v1 form of the attribute-input ops),
how its outputs look in the file, and the constant primitive attributes MindSpore adds
(``input_names``, ``side_effect_mem``...) so our files look like real exports.

Spellings are MindSpore's: Conv2D's ``stride``/``dilation`` are (1, 1, h, w) in the file and
(h, w) in the IR; MaxPool and the conv gradients spell ``pad_mode`` in upper case, Conv2D in
lower case; ``data_format`` attribute-inputs are MindSpore ``Format`` enum ints (0 = NCHW).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import NotSupportedError
from todkit.ir.graph import Node, TensorType
from todkit.opset.build import emit
from todkit.opset.extra_layers import silu_grad
from todkit.opset.more_activations import mish, softplus_grad
from todkit.opset.slicing import MASKS, unsupported_masks

# mindspore/core/mindapi/base/format.h (same numbering as the .ms Format enum).
FORMATS = {0: "NCHW", 1: "NHWC", 15: "NCDHW"}
FORMAT_CODES = {v: k for k, v in FORMATS.items()}


def _ints(v) -> tuple[int, ...]:
    if isinstance(v, (tuple, list)):
        return tuple(int(x) for x in v)
    if hasattr(v, "tolist"):  # a shape given as a tensor
        out = v.tolist()
        return tuple(int(x) for x in (out if isinstance(out, list) else [out]))
    return (int(v),)


def _hw(v) -> tuple[int, ...]:
    """(1, 1, h, w) or (h, w) or k -> (h, w)."""
    v = _ints(v)
    return v[-2:] if len(v) >= 2 else v * 2


def _format(v) -> str:
    if isinstance(v, str):
        return v.upper()
    return FORMATS.get(int(v), f"FORMAT_{int(v)}")


# How a file value becomes an IR attribute value ("read"), and back ("write").
KINDS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    "bool": (bool, bool),
    "int": (int, int),
    "float": (float, float),
    "str": (str, str),
    "ints": (_ints, _ints),
    "format": (_format, lambda v: FORMAT_CODES[v]),   # attribute-input: enum int
    "lower": (lambda v: str(v).lower(), lambda v: str(v).lower()),
    "upper": (lambda v: str(v).lower(), lambda v: str(v).upper()),
    "hw4": (_hw, lambda v: (1, 1) + _hw(v)),        # (h, w) in the IR, (1, 1, h, w) in files
    "hw": (_hw, _hw),
    # a scalar attribute-input as MindSpore gives it: an int, a float or a 0-d tensor
    "number": (lambda v: v.item() if hasattr(v, "item") else v, lambda v: v),
    "raw": (lambda v: v, lambda v: v),
    # Pad's paddings: ((before, after) per axis) in files, flattened (b0, a0, b1, ...) in the IR
    "pairs": (lambda v: tuple(int(x) for pair in v for x in _ints(pair)),
              lambda v: tuple(zip(_ints(v)[0::2], _ints(v)[1::2]))),
    # mindapi PadMode enum (PAD 0, SAME 1, VALID 2) as attribute-input ints (AvgPool in 2.x)
    # mindapi Reduction enum (REDUCTION_SUM 0, MEAN 1, NONE 2) as attribute-input ints
    "reduction": (lambda v: {0: "sum", 1: "mean", 2: "none"}[int(v)] if not isinstance(v, str)
                  else v.lower(),
                  lambda v: {"sum": 0, "mean": 1, "none": 2}[str(v).lower()]),
    "padenum": (lambda v: {0: "pad", 1: "same", 2: "valid"}[int(v)] if not isinstance(v, str)
                else v.lower(),
                lambda v: {"pad": 0, "same": 1, "valid": 2}[str(v).lower()]),
}


@dataclass(frozen=True)
class Attr:
    """One attribute: ``ir`` name in Node.attrs, ``ms`` name in the PrimitiveProto (for
    attribute-inputs, the name in the v1 form), and the ``kind`` of conversion."""

    ir: str
    kind: str
    ms: str = ""

    @property
    def file_name(self) -> str:
        return self.ms or self.ir

    def read(self, v):
        return KINDS[self.kind][0](v)

    def write(self, v):
        return KINDS[self.kind][1](v)


@dataclass(frozen=True)
class OpSpec:
    op: str
    function: bool = True                 # prim_type PRIMITIVE_FUNCTION in MindSpore 2.x
    inputs: int | None = 1                # tensor inputs; None: all non-monad inputs
    tuple_input: bool = False             # the tensors arrive packed in one MakeTuple (AddN)
    attr_inputs: tuple[Attr, ...] = ()    # IR attrs passed as Constant inputs after the tensors
    attrs: tuple[Attr, ...] = ()          # IR attrs kept in the PrimitiveProto
    # Primitive attributes MindSpore writes that the IR does not keep: name -> value, or a
    # function of the IR attrs.
    extra: dict[str, Any] = field(default_factory=dict)
    instance_name: str | Callable[[dict], str] = ""
    # Output types as the file's ``shape`` abstract gives them, when not the IR's (optimizers:
    # the IR has one dummy output, MindSpore the updated tensors).
    file_outputs: Callable[[Node], list[TensorType]] | None = None
    tuple_output: bool = False            # file output is a tuple (TupleGetItem unpacks it)
    generic: bool = False                 # not in this table: attributes under their IR names
    # A MindSpore form the IR spells with its own ops (read only): ``lower(graph, values,
    # attrs, name)`` emits them and returns the node whose outputs stand for the file's.
    # (On a spec of this table, it reads the op itself with checks of its own: StridedSlice.)
    lower: Callable[..., Node] | None = None

    def all_attrs(self) -> tuple[Attr, ...]:
        return self.attr_inputs + self.attrs


def _names(inputs, outputs=("output",)) -> dict[str, list[str]]:
    return {"input_names": list(inputs), "output_names": list(outputs)}


_BOOL = "bool"
_SIDE_EFFECT = {"side_effect_mem": True}

# Conv2D's attributes and its gradients' (the gradients add data_format and spell pad_mode in
# upper case, as MindSpore's bprop builds them).
_CONV_COMMON = (
    Attr("out_channel", "int"), Attr("kernel_size", "hw"), Attr("mode", "int"),
    Attr("pad_list", "ints"), Attr("stride", "hw4"), Attr("dilation", "hw4"),
    Attr("group", "int"), Attr("format", "str"),
)


def _conv_extra(inputs) -> dict[str, Any]:
    return {
        "pad": lambda a: tuple(a["pad_list"]) if a["pad_mode"] == "pad" else (0, 0, 0, 0),
        "groups": lambda a: int(a["group"]),
        **_names(inputs),
    }


def _pool(grad: bool) -> OpSpec:
    return OpSpec(
        "MaxPoolGrad" if grad else "MaxPool", function=False, inputs=3 if grad else 1,
        attrs=(Attr("kernel_size", "hw4"), Attr("strides", "hw4"), Attr("pad_mode", "upper"),
               Attr("format", "str")),
        extra={**({"data_format": lambda a: a["format"]} if grad else {}),
               **_names(("x_origin", "out_origin", "grad") if grad else ("x",))},
        instance_name="" if grad else "max_pool")


def _first_inputs(n: int):
    return lambda node: [v.type for v in node.inputs[:n]]


_SLICE = (Attr("begin", "ints"), Attr("end", "ints"), Attr("strides", "ints"))
_MASKS = tuple(Attr(m, "int") for m in MASKS)


def _strided_slice(op: str, graph, values, attrs, name):
    """StridedSlice / StridedSliceGrad as they are, once their masks are ones todkit
    computes: the begin / end / shrink masks of basic slices. MindSpore's Python indexing
    resolves ``...`` and ``None`` before export, so ellipsis and new-axis masks are refused
    here, by node."""
    bad = unsupported_masks(attrs)
    if bad:
        raise NotSupportedError(f"node {name!r} ({op}): {bad} is not supported (todkit reads "
                                "the begin, end and shrink-axis masks of basic slices)")
    return emit(graph, op, values, attrs, name=name)


_SPECS = [
    OpSpec("MatMul", inputs=2,
           attr_inputs=(Attr("transpose_a", _BOOL), Attr("transpose_b", _BOOL))),
    OpSpec("BiasAdd", inputs=2, attr_inputs=(Attr("data_format", "format"),),
           instance_name="bias_add"),
    OpSpec("BiasAddGrad", inputs=1, attr_inputs=(Attr("data_format", "format"),)),
    OpSpec("Add", inputs=2), OpSpec("Sub", inputs=2), OpSpec("Mul", inputs=2),
    OpSpec("RealDiv", inputs=2),
    OpSpec("AddN", inputs=None, tuple_input=True, extra=_names(("inputs",), ("sum",))),
    OpSpec("Reshape", inputs=1, attr_inputs=(Attr("shape", "ints"),)),
    OpSpec("Flatten", inputs=1),
    OpSpec("ExpandDims", inputs=1, attr_inputs=(Attr("axis", "int"),)),
    OpSpec("Transpose", inputs=1, attr_inputs=(Attr("perm", "ints"),)),
    OpSpec("ReLU", inputs=1, instance_name="relu"),
    OpSpec("ReluGrad", inputs=2),
    OpSpec("Sigmoid", inputs=1), OpSpec("SigmoidGrad", inputs=2),
    OpSpec("Tanh", inputs=1), OpSpec("TanhGrad", inputs=2),
    OpSpec("ReduceMean", inputs=1, attr_inputs=(Attr("axis", "ints"), Attr("keep_dims", _BOOL)),
           instance_name="mean"),
    OpSpec("ReduceSum", inputs=1, attr_inputs=(Attr("axis", "ints"), Attr("keep_dims", _BOOL),
                                               Attr("skip_mode", _BOOL))),
    OpSpec("Tile", inputs=1, attr_inputs=(Attr("multiples", "ints"),)),
    OpSpec("Neg", inputs=1),
    OpSpec("ReLU6", inputs=1), OpSpec("ReLU6Grad", inputs=2),
    OpSpec("HSigmoid", inputs=1), OpSpec("HSigmoidGrad", inputs=2),
    OpSpec("HSwish", inputs=1), OpSpec("HSwishGrad", inputs=2),
    OpSpec("Sqrt", inputs=1), OpSpec("SqrtGrad", inputs=2),
    OpSpec("Exp", inputs=1),
    # 2.10 writes Log's (unused) exp/log-family attributes: tests/fixtures/mindir_forms.
    OpSpec("Log", inputs=1,
           extra={"base": -1.0, "scale": 1.0, "shift": 0.0, "cust_aicpu": "Log"}),
    OpSpec("Maximum", inputs=2), OpSpec("Minimum", inputs=2),
    OpSpec("MaximumGrad", function=False, inputs=3, tuple_output=True,
           attrs=(Attr("grad_x", _BOOL), Attr("grad_y", _BOOL))),
    OpSpec("MinimumGrad", function=False, inputs=3, tuple_output=True,
           attrs=(Attr("grad_x", _BOOL), Attr("grad_y", _BOOL))),
    OpSpec("Softmax", inputs=1, attr_inputs=(Attr("axis", "ints"),)),
    OpSpec("LogSoftmax", inputs=1, attr_inputs=(Attr("axis", "int"),)),
    OpSpec("Dropout", inputs=1, tuple_output=True, instance_name="dropout",
           attr_inputs=(Attr("keep_prob", "float"), Attr("Seed0", "int"), Attr("Seed1", "int")),
           extra={"side_effect_hidden": True}),
    OpSpec("DropoutGrad", function=False, inputs=2, attrs=(Attr("keep_prob", "float"),)),
    OpSpec("Squeeze", inputs=1, attr_inputs=(Attr("axis", "ints"),)),
    OpSpec("SigmoidCrossEntropyWithLogits", function=False, inputs=2),
    OpSpec("SigmoidCrossEntropyWithLogitsGrad", function=False, inputs=3),
    OpSpec("SoftmaxCrossEntropyWithLogits", function=False, inputs=2, tuple_output=True,
           extra=_names(("features", "labels"), ("loss", "backprop")),
           instance_name="softmax_cross_entropy"),
    OpSpec("SparseSoftmaxCrossEntropyWithLogits", function=False, inputs=2,
           attrs=(Attr("is_grad", _BOOL),),
           extra={"sens": lambda a: None if a["is_grad"] else 1.0,  # the loss only
                  **_names(("features", "labels"))},
           instance_name=lambda a: "" if a["is_grad"] else "sparse_softmax_cross_entropy"),
    OpSpec("Conv2D", function=False, inputs=2,
           attrs=_CONV_COMMON + (Attr("pad_mode", "lower"),),
           extra=_conv_extra(("x", "w")), instance_name="conv2d"),
    OpSpec("Conv2DBackpropInput", function=False, inputs=2,
           attr_inputs=(Attr("input_sizes", "ints"),),
           attrs=_CONV_COMMON + (Attr("pad_mode", "upper"),),
           extra={**_conv_extra(("out_backprop", "filter", "input_sizes")),
                  "data_format": lambda a: a["format"]}),
    OpSpec("Conv2DBackpropFilter", function=False, inputs=2,
           attr_inputs=(Attr("filter_sizes", "ints"),),
           attrs=_CONV_COMMON + (Attr("pad_mode", "upper"),),
           extra={**_conv_extra(("out_backprop", "input", "filter_sizes")),
                  "data_format": lambda a: a["format"]}),
    _pool(False), _pool(True),
    # 2.10 (tests/fixtures/reference/depthwise_avgpool_dropout): AvgPool(x, kernel_size,
    # strides, pad_mode enum, data_format) and AvgPoolGrad(x, y, dy, the same four).
    *(OpSpec(op, inputs=n, instance_name=name,
             attr_inputs=(Attr("kernel_size", "hw"), Attr("strides", "hw"),
                          Attr("pad_mode", "padenum"), Attr("format", "format", "data_format")))
      for op, n, name in (("AvgPool", 1, "avg_pool"), ("AvgPoolGrad", 3, ""))),
    OpSpec("BatchNorm", inputs=5,
           attr_inputs=(Attr("is_training", _BOOL), Attr("epsilon", "float"),
                        Attr("momentum", "float"), Attr("data_format", "format")),
           tuple_output=True,
           extra={"side_effect_mem": lambda a: True if a["is_training"] else None},
           instance_name=lambda a: "bn_train" if a["is_training"] else "bn_infer"),
    OpSpec("BatchNormGrad", inputs=6,
           attr_inputs=(Attr("is_training", _BOOL), Attr("epsilon", "float"),
                        Attr("data_format", "format")),
           tuple_output=True),
    OpSpec("Adam", function=False, inputs=10,
           attrs=(Attr("use_locking", _BOOL), Attr("use_nesterov", _BOOL)),
           extra=dict(_SIDE_EFFECT), instance_name="opt",
           file_outputs=_first_inputs(3), tuple_output=True),
    OpSpec("ApplyMomentum", function=False, inputs=5,
           attrs=(Attr("use_nesterov", _BOOL), Attr("use_locking", _BOOL),
                  Attr("gradient_scale", "float")),
           extra={**_SIDE_EFFECT, **_names(("variable", "accumulation", "learning_rate",
                                            "gradient", "momentum"))},
           instance_name="opt", file_outputs=_first_inputs(1)),
    OpSpec("SGD", function=False, inputs=6,
           attrs=(Attr("dampening", "float"), Attr("weight_decay", "float"),
                  Attr("nesterov", _BOOL)),
           extra={**_SIDE_EFFECT, **_names(("parameters", "gradient", "learning_rate", "accum",
                                            "momentum", "stat"))},
           file_outputs=_first_inputs(1)),
    # -- checked on MindSpore 2.10 exports (tests/fixtures/mindir_forms) -------------------
    OpSpec("Concat", tuple_input=True, attr_inputs=(Attr("axis", "int"),)),
    OpSpec("SplitWithSize", inputs=1, tuple_output=True,
           attr_inputs=(Attr("split_size", "ints"), Attr("dim", "int"))),
    OpSpec("Cast", inputs=1, attr_inputs=(Attr("to", "int"),)),
    OpSpec("Pow", inputs=2),
    OpSpec("GeLU", inputs=1), OpSpec("GeLUGrad", inputs=3),
    OpSpec("SmoothL1Loss", inputs=2,
           attr_inputs=(Attr("beta", "float"), Attr("reduction", "reduction"))),
    OpSpec("SmoothL1LossGrad", inputs=3,
           attr_inputs=(Attr("beta", "float"), Attr("reduction", "reduction"))),
    OpSpec("BinaryCrossEntropy", inputs=3, attr_inputs=(Attr("reduction", "reduction"),)),
    OpSpec("BinaryCrossEntropyGrad", inputs=4, attr_inputs=(Attr("reduction", "reduction"),)),
    OpSpec("NLLLoss", inputs=3, tuple_output=True,
           attr_inputs=(Attr("reduction", "reduction"), Attr("ignore_index", "int"))),
    OpSpec("NLLLossGrad", inputs=5,
           attr_inputs=(Attr("reduction", "reduction"), Attr("ignore_index", "int"))),
    OpSpec("AdamWeightDecay", inputs=9, attr_inputs=(Attr("use_locking", _BOOL),),
           extra=dict(_SIDE_EFFECT), file_outputs=_first_inputs(3), tuple_output=True),
    # nn.Pad exports a classic Pad{paddings} with Slice(dout, begin, size) as its gradient;
    # a per-step learning rate is Gather(table, global_step, axis, batch_dims) (2.10 exports).
    OpSpec("Pad", function=False, inputs=1, attrs=(Attr("paddings", "pairs"),),
           extra=_names(("x",), ("y",)), instance_name="pad"),
    OpSpec("Slice", inputs=1, attr_inputs=(Attr("begin", "ints"), Attr("size", "ints"))),
    OpSpec("Gather", inputs=2, attr_inputs=(Attr("axis", "int"), Attr("batch_dims", "int")),
           instance_name="gather"),
    # Not checked (MSELoss / L1Loss in 2.10 export PowTensorScalar / Sign gradients instead).
    OpSpec("Square", inputs=1), OpSpec("Abs", inputs=1), OpSpec("AbsGrad", inputs=2),
    OpSpec("Sign", inputs=1),  # 2.10's L1Loss gradient (tests/fixtures/reference/mlp_l1_momentum)
    # 2.10's Maximum / Minimum gradient (tests/fixtures/reference/leakyrelu_momentum)
    *(OpSpec(name, inputs=2) for name in ("Less", "Greater", "Equal", "GreaterEqual",
                                            "LessEqual", "NotEqual", "LogicalAnd", "LogicalOr")),
    OpSpec("LogicalNot", inputs=1),
    # nn.CrossEntropyLoss / nn.NLLLoss: ReduceMax(x, axis, keep_dims); GatherD(x, dim, index)
    # has its dim between the tensors and is read through LOWERED
    OpSpec("ReduceMax", inputs=1, attr_inputs=(Attr("axis", "ints"), Attr("keep_dims", _BOOL))),
    OpSpec("Select", inputs=3),
    # 2.10's ELU (tests/fixtures/reference/elu_momentum): EluGrad has no alpha (it is 1).
    OpSpec("Elu", inputs=1, attr_inputs=(Attr("alpha", "float"),)),
    OpSpec("EluGrad", inputs=2),
    OpSpec("Assign", inputs=2, extra=dict(_SIDE_EFFECT)),
    OpSpec("AssignAdd", inputs=2, extra=dict(_SIDE_EFFECT), instance_name="assignadd"),
    # nn.LayerNorm in 2.10 (tests/fixtures/reference/layernorm_adam): LayerNorm(x, gamma,
    # beta, begin_norm_axis, begin_params_axis, epsilon) -> (y, mean, variance); its bprop
    # LayerNormGrad(x, dy, variance, mean, gamma, begin_norm_axis, begin_params_axis) ->
    # (dx, dgamma, dbeta) carries the forward's epsilon as a primitive attribute.
    OpSpec("LayerNorm", inputs=3, tuple_output=True, instance_name="layer_norm",
           attr_inputs=(Attr("begin_norm_axis", "int"), Attr("begin_params_axis", "int"),
                        Attr("epsilon", "float"))),
    OpSpec("LayerNormGrad", inputs=5, tuple_output=True,
           attr_inputs=(Attr("begin_norm_axis", "int"), Attr("begin_params_axis", "int")),
           attrs=(Attr("epsilon", "float"),)),
    # -- nn.SiLU and nn.Embedding's gradient in 2.10 exports (opset/extra_layers.py):
    # SiLU(x); UnsortedSegmentSum(x, segment_ids, num_segments)
    OpSpec("SiLU", inputs=1),
    OpSpec("UnsortedSegmentSum", inputs=2, attr_inputs=(Attr("num_segments", "int"),)),
    # 2.10's tensor indexing (tests/fixtures/reference/slice_momentum, mindir_forms/concat):
    # StridedSlice(x, begin, end, strides, five masks) with everything but x attribute-inputs;
    # StridedSliceGrad(dout, shapex, begin, end, strides), a classic primitive holding the masks.
    OpSpec("StridedSlice", inputs=1, attr_inputs=_SLICE + _MASKS,
           lower=lambda graph, values, attrs, name: _strided_slice(
               "StridedSlice", graph, values, attrs, name)),
    OpSpec("StridedSliceGrad", function=False, inputs=1,
           attr_inputs=(Attr("shapex", "ints"),) + _SLICE, attrs=_MASKS,
           extra=_names(("dy", "shapex", "begin", "end", "strides")),
           lower=lambda graph, values, attrs, name: _strided_slice(
               "StridedSliceGrad", graph, values, attrs, name)),
    # ops.BatchMatMul (2.10: transposes as attribute-inputs, like MatMul); 2.10's ops.matmul
    # (MatMulExt) is read as MatMul or BatchMatMul by its operands' ranks (LOWERED below).
    OpSpec("BatchMatMul", inputs=2, instance_name="bmm",
           attr_inputs=(Attr("transpose_a", _BOOL), Attr("transpose_b", _BOOL))),
    # -- nn.GroupNorm in 2.10 (tests/fixtures/reference/groupnorm_momentum): its bprop
    # GroupNormGrad(dy, x, mean, rstd, gamma, num_groups, dx_is_require, dgamma_is_require,
    # dbeta_is_require) -> (dx, dgamma, dbeta); GroupNorm itself is read through LOWERED.
    OpSpec("GroupNormGrad", inputs=5, tuple_output=True,
           attr_inputs=(Attr("num_groups", "int"), Attr("dx_is_require", _BOOL),
                        Attr("dgamma_is_require", _BOOL), Attr("dbeta_is_require", _BOOL))),
    # -- nn.PReLU, nn.Mish, nn.Dropout2d in 2.10 exports (opset/more_activations.py;
    # tests/fixtures/reference: prelu_momentum, mish_momentum, dropout2d_momentum).
    # PReLU(x, w) and PReLUGrad(dy, x, w) -> (dx, dw) have no attributes: the IR's
    # data_format (the channel axis, NHWC only once the converter re-lays a graph out) is not
    # written, as MINDIR graphs are NCHW. Softplus is the classic primitive of 2.10's Mish
    # gradient; Dropout2D{keep_prob} -> (y, bool mask) is a classic one too.
    OpSpec("PReLU", inputs=2, extra={"data_format": lambda a: None}, instance_name="prelu"),
    OpSpec("PReLUGrad", inputs=3, tuple_output=True, extra={"data_format": lambda a: None}),
    OpSpec("Softplus", function=False, inputs=1, extra=_names(("x",))),
    OpSpec("Dropout2D", function=False, inputs=1, tuple_output=True,
           attrs=(Attr("keep_prob", "float"),), instance_name="dropout2d",
           lower=lambda graph, values, attrs, name: _dropout2d(graph, values, attrs, name)),
]



# -- MindSpore 2.10 gradient forms read as IR ops (tests/fixtures/reference: mlp_mse_momentum,
# leakyrelu_momentum). The scalar is a Constant input: an int or float, or a 0-d tensor.
def _with_scalar(ir_op: str):
    """Muls(x, s) -> Mul(x, s), Divs -> RealDiv, PowTensorScalar -> Pow: the scalar becomes a
    0-d constant of x's dtype (MindSpore computes in x's dtype)."""
    def lower(graph, values, attrs, name):
        x = values[0]
        s = graph.add_const(f"{name}/scalar", np.asarray(attrs["scalar"], dtype=x.type.dtype.np),
                            unique=True)
        return emit(graph, ir_op, [x, s], name=name)
    return lower


def _scaled_scalar(ir_op: str):
    """SubScalar(x, other, alpha) -> Sub(x, alpha * other), AddScalar -> Add (2.10's Pow
    gradient): the scalar a 0-d constant of x's dtype."""
    def lower(graph, values, attrs, name):
        attrs = {"scalar": attrs["other"] * attrs.get("alpha", 1)}
        return _with_scalar(ir_op)(graph, values, attrs, name)
    return lower


def _fill(graph, values, attrs, name):
    """FillV2(shape, value) -> FillV2(value as a 0-d constant; shape): the IR keeps the value
    as a tensor (its dtype is the output's) and the shape as an attribute, as Lite's Fill."""
    value = np.asarray(attrs.pop("value"))
    if value.size != 1:
        raise ValueError(f"FillV2's value must be one number, got shape {list(value.shape)}")
    v = graph.add_const(f"{name}/value", value.reshape(()), unique=True)
    return emit(graph, "FillV2", [v], {"shape": attrs["shape"]}, name=name)


def _div(graph, values, attrs, name):
    """Div(x, y): MindSpore's division of floats is RealDiv's (2.10's Log gradient)."""
    return emit(graph, "RealDiv", values, name=name)


def _softmax_backward(graph, values, attrs, name):
    """SoftmaxBackward(dout, y, dim) -> y * (dout - ReduceSum(dout * y, dim, keep)): the
    gradient todkit's own Softmax rule emits (Lite has no softmax-gradient kernel)."""
    dout, y = values
    axis = (int(attrs["dim"]),)
    prod = emit(graph, "Mul", [dout, y], name=f"{name}/Mul").outputs[0]
    total = emit(graph, "ReduceSum", [prod], {"axis": axis, "keep_dims": True},
                 name=f"{name}/ReduceSum").outputs[0]
    diff = emit(graph, "Sub", [dout, total], name=f"{name}/Sub").outputs[0]
    return emit(graph, "Mul", [y, diff], name=name)


def _log_softmax_grad(graph, values, attrs, name):
    """LogSoftmaxGrad(y, dout, axis) -> dout - Exp(y) * ReduceSum(dout, axis, keep)."""
    y, dout = values
    axis = (int(attrs["axis"]),)
    e = emit(graph, "Exp", [y], name=f"{name}/Exp").outputs[0]
    total = emit(graph, "ReduceSum", [dout], {"axis": axis, "keep_dims": True},
                 name=f"{name}/ReduceSum").outputs[0]
    scaled = emit(graph, "Mul", [e, total], name=f"{name}/Mul").outputs[0]
    return emit(graph, "Sub", [dout, scaled], name=name)


def _sum_ext(graph, values, attrs, name):
    """SumExt(x, dim, keepdim, dtype) -> ReduceSum(x){axis, keep_dims} (2.10's Tile
    gradient); a dtype other than x's (a casting sum) is not supported."""
    (x,) = values
    dtype = attrs.get("dtype")
    if dtype is not None and dtypes.from_ms(int(dtype)) != x.type.dtype:
        raise ValueError(f"SumExt to dtype {dtype} of a {x.type.dtype.name} tensor: "
                         "casting sums are not supported")
    dim = attrs.get("dim")
    axis = () if dim is None else tuple(int(d) for d in np.atleast_1d(dim))
    return emit(graph, "ReduceSum", [x], {"axis": axis, "keep_dims": bool(attrs["keepdim"])},
                name=name)


def _dim_input(v, name: str) -> int:
    """GatherD's dim: a Constant between the tensor inputs (read as a constant value)."""
    if not v.is_const or np.asarray(v.data).size != 1:
        raise ValueError(f"{name}: dim must be a constant integer")
    return int(np.asarray(v.data).reshape(()))


def _masked_fill(graph, values, attrs, name):
    """MaskedFill(x, mask, value) -> Select(mask, value, x): the value a 0-d constant of x's
    dtype, broadcast by Select (Lite has Select, not MaskedFill)."""
    x, mask = values
    v = graph.add_const(f"{name}/value", np.asarray(attrs["value"], x.type.dtype.np).reshape(()),
                        unique=True)
    return emit(graph, "Select", [mask, v, x], name=name)


def _gather_d_grad(graph, values, attrs, name):
    """GatherDGradV2(x, dim, index, dout) -> the scatter-add of dout into x's shape at
    index along dim, for 2-D x gathered along its last axis (nn.CrossEntropyLoss /
    nn.NLLLoss): ReduceSum_k(OneHot(index, C)[n, k, c] * dout[n, k]) (Lite has no GatherD
    gradient kernel; it has OneHot, Mul and ReduceSum)."""
    x, index, dout = values
    shape = tuple(x.type.shape)
    if len(shape) != 2 or int(attrs["dim"]) % 2 != 1:
        raise NotImplementedError(f"GatherDGradV2 of a rank-{len(shape)} input along dim "
                                  f"{attrs['dim']}: only 2-D inputs along their last axis are "
                                  "supported")
    dt = x.type.dtype.np
    on = graph.add_const(f"{name}/on", np.array(1, dt), unique=True)
    off = graph.add_const(f"{name}/off", np.array(0, dt), unique=True)
    hot = emit(graph, "OneHot", [index, on, off], {"depth": shape[1], "axis": -1},
               name=f"{name}/OneHot").outputs[0]
    col = emit(graph, "ExpandDims", [dout], {"axis": -1}, name=f"{name}/ExpandDims").outputs[0]
    spread = emit(graph, "Mul", [hot, col], name=f"{name}/Mul").outputs[0]
    return emit(graph, "ReduceSum", [spread], {"axis": (1,), "keep_dims": False}, name=name)
# -- nn.SiLU, nn.BCEWithLogitsLoss and nn.AdaptiveAvgPool2d as 2.10 exports them ----------
def _namer(graph, name: str):
    """make(op, inputs, suffix, **attrs) -> output 0 of a new node named ``name/suffix``, or
    ``name`` itself for the empty suffix (the node standing for the file's)."""
    def make(op, inputs, suffix, **attrs):
        return emit(graph, op, inputs, attrs, name=f"{name}/{suffix}" if suffix else name) \
            .outputs[0]
    return make


def _silu_grad(graph, values, attrs, name):
    """SiLUGrad(dout, x) -> dout * s + SigmoidGrad(s, dout * x), s = Sigmoid(x): SiLU's own
    gradient rule (Lite's ActivationGrad has no SWISH; opset/extra_layers.py)."""
    dout, x = values
    return silu_grad(_namer(graph, name), x, dout).producer


def _bce_const(graph, x, value, what: str, name: str):
    """A BCEWithLogitsLoss weight or pos_weight as a constant of x's dtype, or None for None /
    ones. It must broadcast to x's shape (MindSpore's rule); one computed while the graph
    runs is refused earlier, by the reader (only constant attribute-inputs are read)."""
    if value is None or bool(np.all(np.asarray(value) == 1)):
        return None
    w = np.asarray(value)
    try:
        fits = w.dtype.kind in "fiub" and \
            np.broadcast_shapes(w.shape, x.type.shape) == x.type.shape
    except ValueError:
        fits = False
    if not fits:
        raise NotSupportedError(f"node {name!r}: BCEWithLogitsLoss {what} of shape "
                                f"{list(w.shape)} does not broadcast to the logits' "
                                f"{list(x.type.shape)}")
    return graph.add_const(f"{name}/{what}", w.astype(x.type.dtype.np), unique=True)


def _bce_consts(graph, x, attrs, name):
    """(weight, pos_weight - 1, pos_weight, 0, 1) as constants of x's dtype: weight None when
    it is None or ones, the other four None when pos_weight is."""
    dt = x.type.dtype.np
    weight = _bce_const(graph, x, attrs.get("weight"), "weight", name)
    pos = _bce_const(graph, x, attrs.get("pos_weight"), "pos_weight", name)
    if pos is None:
        return weight, None, None, None, None
    pos_m1, zero, one = (graph.add_const(f"{name}/{what}", np.asarray(v, dt), unique=True)
                         for what, v in (("pos_weight_minus_1", pos.data - 1), ("zero", 0),
                                         ("one", 1)))
    return weight, pos_m1, pos, zero, one


def _bce_with_logits(graph, values, attrs, name):
    """BCEWithLogitsLoss(x, y, weight, pos_weight, reduction) -> element-wise loss [* weight],
    then ReduceMean / ReduceSum over every axis ('none': none), as todkit's own
    nn.BCEWithLogitsLoss builds it, with Lite kernels for each op. The element-wise loss is
    SigmoidCrossEntropyWithLogits(x, y) when pos_weight is None or ones; with a pos_weight p
    it is MindSpore's (1 - y) x + (1 + (p - 1) y) softplus(-x), softplus(-x) written stably
    as log(1 + exp(-|x|)) + max(-x, 0) (|x| as Maximum(x, -x))."""
    x, y = values
    make = _namer(graph, name)
    weight, pos_m1, _, zero, one = _bce_consts(graph, x, attrs, name)
    tail = (["Mul"] if weight is not None else []) + \
        {"mean": ["ReduceMean"], "sum": ["ReduceSum"]}.get(attrs["reduction"], [])
    last = (lambda step: "" if not tail else step)  # the last node carries the file's name
    if pos_m1 is None:
        loss = make("SigmoidCrossEntropyWithLogits", [x, y],
                    last("SigmoidCrossEntropyWithLogits"))
    else:
        neg = make("Neg", [x], "Neg")
        abs_x = make("Maximum", [x, neg], "Abs")
        e = make("Exp", [make("Neg", [abs_x], "Neg_abs")], "Exp")
        log1p = make("Log", [make("Add", [e, one], "Add_one")], "Log")
        softplus_neg = make("Add", [log1p, make("Maximum", [neg, zero], "Relu_neg")],
                            "Softplus_neg")
        log_weight = make("Add", [make("Mul", [y, pos_m1], "Mul_pos_weight"), one],
                          "Log_weight")
        linear = make("Mul", [make("Sub", [one, y], "One_minus_y"), x], "Mul_x")
        loss = make("Add", [linear, make("Mul", [log_weight, softplus_neg], "Mul_softplus")],
                    last("Loss"))
    for k, op in enumerate(tail):
        suffix = "" if k == len(tail) - 1 else op
        if op == "Mul":
            loss = make(op, [loss, weight], suffix)
        else:
            loss = make(op, [loss], suffix, axis=(), keep_dims=False)
    return loss.producer


def _bce_with_logits_grad(graph, values, attrs, name):
    """BinaryCrossEntropyWithLogitsBackward(dout, x, y, weight, pos_weight, reduction) -> d =
    dout spread back over x's shape as todkit's ReduceMean / ReduceSum rules spread it
    (Reshape, Tile, RealDiv by the count for 'mean') [* weight], then
    SigmoidCrossEntropyWithLogitsGrad(x, y, d) = (sigmoid(x) - y) d; with a pos_weight p,
    d * ((1 + (p - 1) y) sigmoid(x) - p y), the derivative of the loss above."""
    dout, x, y = values
    make = _namer(graph, name)
    weight, pos_m1, pos, _, one = _bce_consts(graph, x, attrs, name)
    shape = x.type.shape
    d = dout
    if attrs["reduction"] != "none":
        if dout.type.size != 1:
            raise NotSupportedError(f"node {name!r}: the gradient of a reduced "
                                    f"BCEWithLogitsLoss has shape {list(dout.type.shape)}")
        kept = (1,) * len(shape)
        if d.type.shape != kept:
            d = make("Reshape", [d], "Reshape", shape=kept)
        if kept != shape:
            d = make("Tile", [d], "Tile", multiples=shape)
        if attrs["reduction"] == "mean":
            count = graph.add_const(f"{name}/count", np.array(x.type.size, x.type.dtype.np),
                                    unique=True)
            d = make("RealDiv", [d, count], "RealDiv")
    if weight is not None:
        d = make("Mul", [d, weight], "Mul")
    if pos_m1 is None:
        return make("SigmoidCrossEntropyWithLogitsGrad", [x, y, d], "").producer
    log_weight = make("Add", [make("Mul", [y, pos_m1], "Mul_pos_weight"), one], "Log_weight")
    through_sigmoid = make("Mul", [log_weight, make("Sigmoid", [x], "Sigmoid")], "Mul_sigmoid")
    slope = make("Sub", [through_sigmoid, make("Mul", [y, pos], "Mul_pos")], "Sub")
    return make("Mul", [d, slope], "").producer


def _adaptive_avg_pool(graph, values, attrs, name):
    """AdaptiveAvgPool2D{output_size} of an NCHW x: output size 1 (global average pooling) is
    ReduceMean(x, (2, 3), keep_dims); Lite has no adaptive pooling kernel for other sizes."""
    (x,) = values
    if len(x.type.shape) != 4:
        raise NotSupportedError(f"node {name!r}: AdaptiveAvgPool2D of a "
                                f"{len(x.type.shape)}-D input; only NCHW is supported")
    size = attrs.get("output_size")
    size = (size, size) if size is None or np.ndim(size) == 0 else tuple(size)
    # None (or -1) keeps the input's extent
    resolved = tuple(d if s is None or int(s) == -1 else int(s)
                     for s, d in zip(size, x.type.shape[2:]))
    if resolved != (1, 1):
        raise NotSupportedError(f"node {name!r}: AdaptiveAvgPool2D to output size "
                                f"{list(resolved)} is not supported (only 1, global average "
                                "pooling, which is ReduceMean over H and W)")
    return emit(graph, "ReduceMean", [x], {"axis": (2, 3), "keep_dims": True}, name=name)


def _adaptive_avg_pool_grad(graph, values, attrs, name):
    """AdaptiveAvgPool2DGrad(dy, x_shape) of a global pooling: dy [N, C, 1, 1] tiled over H, W
    and divided by H * W, as todkit's ReduceMean rule emits its gradient."""
    (dy,) = values
    shape = tuple(attrs["x_shape"])
    if len(shape) != 4 or tuple(dy.type.shape) != (*shape[:2], 1, 1):
        raise NotSupportedError(f"node {name!r}: AdaptiveAvgPool2DGrad of dy "
                                f"{list(dy.type.shape)} to {list(shape)}: only the gradient "
                                "of output size 1 (global average pooling) is supported")
    make = _namer(graph, name)
    d = dy
    if shape[2:] != (1, 1):
        d = make("Tile", [d], "Tile", multiples=(1, 1, *shape[2:]))
    count = graph.add_const(f"{name}/count", np.array(shape[2] * shape[3], dy.type.dtype.np),
                            unique=True)
    return make("RealDiv", [d, count], "").producer
def _split(graph, values, attrs, name):
    """Split(x, axis, output_num) (2.10's ops.split into equal pieces) -> SplitWithSize of
    output_num equal sizes: Lite's Split either way, and its gradient is the Concat that
    SplitWithSize's own rule emits (tests/fixtures/reference/split_momentum)."""
    (x,) = values
    n, axis = int(attrs["output_num"]), int(attrs["axis"])
    rank = len(x.type.shape)
    if not -rank <= axis < rank:
        raise ValueError(f"Split axis {axis} is out of range for rank {rank}")
    dim = x.type.shape[axis]
    if n < 1 or dim % n:
        raise ValueError(f"Split of an axis of {dim} into {n} equal pieces")
    return emit(graph, "SplitWithSize", [x], {"split_size": (dim // n,) * n, "dim": axis},
                name=name)


def _matmul_ext(graph, values, attrs, name):
    """MatMulExt(x, w) (2.10's ops.matmul: NumPy's matmul) -> MatMul when both operands are
    2-D, BatchMatMul when either has batch axes; a 1-D operand is made a row (x) or a
    column (w) by a Reshape, and that axis is dropped from the product again."""
    x, w = values
    xs, ws = tuple(x.type.shape), tuple(w.type.shape)
    if not xs or not ws:
        raise ValueError("MatMulExt of a 0-d operand")
    xv, wv = x, w
    if len(xs) == 1:
        xv = emit(graph, "Reshape", [x], {"shape": (1, xs[0])}, name=f"{name}/row").outputs[0]
    if len(ws) == 1:
        wv = emit(graph, "Reshape", [w], {"shape": (ws[0], 1)}, name=f"{name}/col").outputs[0]
    op = "MatMul" if len(xv.type.shape) == 2 and len(wv.type.shape) == 2 else "BatchMatMul"
    if xv is x and wv is w:
        return emit(graph, op, [x, w], name=name)
    y = emit(graph, op, [xv, wv], name=f"{name}/{op}").outputs[0]
    shape = y.type.shape
    if len(xs) == 1:
        shape = shape[:-2] + shape[-1:]
    if len(ws) == 1:
        shape = shape[:-1]
    return emit(graph, "Reshape", [y], {"shape": shape}, name=name)


# -- nn.GroupNorm --------------------------------------------------------------------------
def _group_norm(graph, values, attrs, name):
    """GroupNorm as 2.10 writes it, (x, num_groups, gamma, beta, eps) with the two numbers
    Constant inputs between and after the tensors (which OpSpec cannot place), or as todkit
    writes it, (x, gamma, beta) with num_groups and epsilon as primitive attributes."""
    if len(values) == 5:
        x, groups, gamma, beta, eps = values
        attrs = {"num_groups": int(_number_input(groups, name, "num_groups", "iu")),
                 "epsilon": float(_number_input(eps, name, "eps", "f"))}
    elif len(values) == 3 and "num_groups" in attrs:
        x, gamma, beta = values
    else:
        raise NotSupportedError(f"node {name!r}: GroupNorm with {len(values)} inputs; it takes "
                                "(x, num_groups, gamma, beta, eps) or (x, gamma, beta)")
    return emit(graph, "GroupNorm", [x, gamma, beta], attrs, name=name)


def _number_input(v, name: str, what: str, kinds: str):
    """A number given as a Constant among the tensor inputs (GroupNorm's num_groups, eps)."""
    data = np.asarray(v.data) if v.is_const else None
    if data is None or data.size != 1 or data.dtype.kind not in kinds:
        raise NotSupportedError(f"node {name!r}: GroupNorm's {what} must be a constant "
                                f"{'integer' if 'i' in kinds else 'number'}")
    return data.reshape(()).item()
# -- nn.Mish and nn.Dropout2d as 2.10 exports them (opset/more_activations.py) ---------------
def _dropout2d(graph, values, attrs, name):
    """Dropout2D as it is, once it is a form todkit runs: an NCHW input and a keep_prob in
    (0, 1] (nn.Dropout2d(p=1.0) exports keep_prob 0: every channel dropped, and MindSpore's
    scale 1 / keep_prob undefined)."""
    (x,) = values
    keep = attrs.get("keep_prob", 0.5)
    if not 0.0 < float(keep) <= 1.0:
        raise NotSupportedError(f"node {name!r} (Dropout2D): keep_prob {keep} is not "
                                "supported (only 0 < keep_prob <= 1)")
    if len(x.type.shape) != 4:
        raise NotSupportedError(f"node {name!r} (Dropout2D): a {len(x.type.shape)}-D input is "
                                "not supported (only NCHW 4-D)")
    return emit(graph, "Dropout2D", values, attrs, name=name)


def _mish(graph, values, attrs, name):
    """Mish(x) -> Mul(x, Tanh(Softplus(x))): Lite has Softplus and Tanh activations, no Mish
    (2.10's own Mish gradient recomputes the same Softplus and Tanh)."""
    return mish(_namer(graph, name), values[0]).producer


def _softplus_grad(graph, values, attrs, name):
    """SoftplusGrad(dy, x) -> Mul(dy, Sigmoid(x)): Lite's ActivationGrad has no SOFTPLUS."""
    dy, x = values
    return softplus_grad(_namer(graph, name), x, dy).producer


# Read only: the writer never meets these names (the IR spells them with its own ops).
LOWERED: dict[str, OpSpec] = {s.op: s for s in [
    *(OpSpec(ms_op, inputs=1, attr_inputs=(Attr("scalar", "number"),),
             lower=_with_scalar(ir_op))
      for ms_op, ir_op in (("Muls", "Mul"), ("Divs", "RealDiv"), ("PowTensorScalar", "Pow"))),
    OpSpec("FillV2", function=False, inputs=0,
           attr_inputs=(Attr("shape", "ints"), Attr("value", "raw")), lower=_fill),
    *(OpSpec(ms_op, inputs=1, attr_inputs=(Attr("other", "number"), Attr("alpha", "number")),
             lower=_scaled_scalar(ir_op))
      for ms_op, ir_op in (("SubScalar", "Sub"), ("AddScalar", "Add"))),
    # nn.Conv2dTranspose: Conv2DTranspose(x, w, input_sizes) is the input gradient of the
    # convolution it transposes, attribute for attribute (its weight gradient comes as
    # Conv2DBackpropFilter(x, dout) with the roles swapped, which the IR op computes as is).
    OpSpec("Conv2DTranspose", function=False, inputs=2,
           attr_inputs=(Attr("input_sizes", "ints"),),
           attrs=_CONV_COMMON + (Attr("pad_mode", "upper"),),
           lower=lambda graph, values, attrs, name: emit(graph, "Conv2DBackpropInput", values,
                                                        attrs, name=name)),
    # nn.CrossEntropyLoss / nn.NLLLoss (reference run cross_entropy_momentum)
    OpSpec("MaskedFill", inputs=2, attr_inputs=(Attr("value", "raw"),), lower=_masked_fill),
    OpSpec("GatherD", inputs=3, lower=lambda graph, values, attrs, name: emit(
        graph, "GatherD", [values[0], values[2]], {"dim": _dim_input(values[1], name)},
        name=name)),
    OpSpec("GatherDGradV2", inputs=4, lower=lambda graph, values, attrs, name: _gather_d_grad(
        graph, [values[0], values[2], values[3]], {"dim": _dim_input(values[1], name)}, name)),
    # tests/fixtures/mindir_forms: sqrt_exp_log, softmax, log_softmax, tile
    OpSpec("Div", inputs=2, lower=_div),
    OpSpec("SoftmaxBackward", inputs=2, attr_inputs=(Attr("dim", "int"),),
           lower=_softmax_backward),
    OpSpec("LogSoftmaxGrad", inputs=2, attr_inputs=(Attr("axis", "int"),),
           lower=_log_softmax_grad),
    OpSpec("SumExt", inputs=1, attr_inputs=(Attr("dim", "raw"), Attr("keepdim", _BOOL),
                                            Attr("dtype", "raw")), lower=_sum_ext),
    # -- nn.SiLU, nn.BCEWithLogitsLoss, nn.AdaptiveAvgPool2d(1) (2.10 exports; see their
    # lowerings below for what is supported)
    OpSpec("SiLUGrad", inputs=2, lower=_silu_grad),
    *(OpSpec(ms_op, inputs=n, lower=fn,
             attr_inputs=(Attr("weight", "raw"), Attr("pos_weight", "raw"),
                          Attr("reduction", "reduction")))
      for ms_op, n, fn in (("BCEWithLogitsLoss", 2, _bce_with_logits),
                           ("BinaryCrossEntropyWithLogitsBackward", 3, _bce_with_logits_grad))),
    OpSpec("AdaptiveAvgPool2D", function=False, inputs=1, attrs=(Attr("output_size", "raw"),),
           lower=_adaptive_avg_pool),
    OpSpec("AdaptiveAvgPool2DGrad", function=False, inputs=1,
           attr_inputs=(Attr("x_shape", "ints"),), lower=_adaptive_avg_pool_grad),
    # tests/fixtures/reference: split_momentum, batchmatmul_momentum
    OpSpec("Split", inputs=1, tuple_output=True,
           attr_inputs=(Attr("axis", "int"), Attr("output_num", "int")), lower=_split),
    OpSpec("MatMulExt", inputs=2, lower=_matmul_ext),
    # nn.GroupNorm (tests/fixtures/reference/groupnorm_momentum): GroupNorm's num_groups sits
    # between its tensors, which OpSpec cannot write, so todkit's writer gives GroupNorm its
    # generic form (attributes in the primitive); both forms are read here
    OpSpec("GroupNorm", inputs=None, tuple_output=True,
           attrs=(Attr("num_groups", "int"), Attr("epsilon", "float")), lower=_group_norm),
    # nn.Mish: Lite has no MISH activation nor a Softplus gradient kernel
    # (tests/fixtures/reference/mish_momentum)
    OpSpec("Mish", function=False, inputs=1, lower=_mish),
    OpSpec("SoftplusGrad", function=False, inputs=2, lower=_softplus_grad),
]}

OPTABLE: dict[str, OpSpec] = {s.op: s for s in _SPECS}

# MindSpore's older spellings of attributes, accepted when reading (v1 MatMul, Conv2D).
ALIASES = {"transpose_x1": "transpose_a", "transpose_x2": "transpose_b", "groups": "group"}

# The side-effect plumbing: read() resolves these, write() generates them.
PLUMBING = frozenset({"Load", "UpdateState", "Depend", "MakeTuple", "TupleGetItem"})


def mutated_inputs(spec: OpSpec, opdef, attrs: dict) -> tuple[int, ...]:
    """The inputs a node updates in place, as its OpDef says for these attributes."""
    return tuple(opdef.mutated(attrs))


def spec_for(op: str) -> OpSpec | None:
    return OPTABLE.get(op)


def read_spec(op: str) -> OpSpec | None:
    """The spec a file's ``op`` is read by: a lowered MindSpore form, else the table's."""
    return LOWERED.get(op) or OPTABLE.get(op)


def generic_spec(op: str) -> OpSpec:
    """Ops the opset has but this table does not: every input is a tensor, every IR attribute
    a classic primitive attribute under its own name (written and read back as is)."""
    return OpSpec(op, function=False, inputs=None, generic=True)
