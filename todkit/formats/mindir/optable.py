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

from todkit.core.errors import NotSupportedError
from todkit.ir.graph import Node, TensorType
from todkit.opset.build import emit
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
    # has its dim between the tensors and is read through lowered.LOWERED
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
    # (MatMulExt) is read as MatMul or BatchMatMul by its operands' ranks (lowered.LOWERED).
    OpSpec("BatchMatMul", inputs=2, instance_name="bmm",
           attr_inputs=(Attr("transpose_a", _BOOL), Attr("transpose_b", _BOOL))),
    # -- nn.GroupNorm in 2.10 (tests/fixtures/reference/groupnorm_momentum): its bprop
    # GroupNormGrad(dy, x, mean, rstd, gamma, num_groups, dx_is_require, dgamma_is_require,
    # dbeta_is_require) -> (dx, dgamma, dbeta); GroupNorm itself is read through lowered.LOWERED.
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


def generic_spec(op: str) -> OpSpec:
    """Ops the opset has but this table does not: every input is a tensor, every IR attribute
    a classic primitive attribute under its own name (written and read back as is)."""
    return OpSpec(op, function=False, inputs=None, generic=True)
