"""The one table between IR ops and `.ms` ``PrimitiveType`` members.

Each ``Row`` says which union member an IR op is written as, which member attributes select it
(``Activation{activation_type: RELU}`` is ``ReLU``), how attributes translate both ways, and which
IR attributes the file passes as constant int32 inputs (``Reshape`` shape, ``Transpose`` perm,
``ExpandDims`` axis, the conv backprops' output sizes). Input order is the IR's for every row:
the converter keeps MindSpore's input order (``ActivationGrad`` included: ReluGrad (dy, y),
SigmoidGrad / TanhGrad (y, dy); ``primitive_adjust.cc`` only renames them), and the optimizer
input orders of reference/formats.md are the IR's.

Fused forms the converter makes for inference (``activation_type`` other than NO_ACTIVATION, a
bias as third input of ``MatMulFusion`` / ``Conv2DFusion``) are split by the reader into separate
``BiasAdd`` / activation nodes; the writer never fuses (the converter does not fuse train ops).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from todkit.formats.ms import schema

ACT = schema.ENUMS["ActivationType"][1]
NO_ACTIVATION = ACT["NO_ACTIVATION"]
# Fused activation_type -> the IR op the reader emits for it.
ACTIVATION_OPS = {ACT["RELU"]: "ReLU", ACT["SIGMOID"]: "Sigmoid", ACT["TANH"]: "Tanh",
                  ACT["RELU6"]: "ReLU6"}
PAD_MODES = {0: "pad", 1: "same", 2: "valid"}  # schema PadMode -> MindSpore's pad_mode


def fmt_name(code: int) -> str:
    name = schema.enum_name("Format", int(code))
    if name is None:
        raise ValueError(f"unknown Format {code}")
    return name


def fmt_code(name: str) -> int:
    return schema.enum_value("Format", name) if name in schema.ENUMS["Format"][1] else 0


def _ints(v) -> tuple[int, ...]:
    return tuple(int(x) for x in v)


def _last2(v) -> tuple[int, ...]:
    # Conv backprops store MindSpore's 4-value (1, 1, h, w) stride/dilation; Conv2D stores 2.
    t = _ints(v if v is not None else (1, 1))
    return t[-2:]


def _pad_mode(code: int) -> str:
    if int(code) not in PAD_MODES:
        raise ValueError(f"unknown pad_mode {code}")
    return PAD_MODES[int(code)]


def _pad_code(mode: str) -> int:
    return {v: k for k, v in PAD_MODES.items()}[str(mode).lower()]


# -- attribute translators: (ms attrs, IR input values) -> IR attrs, and back -------------
def _conv_to_ir(ms: dict, ins) -> dict:
    return {
        "out_channel": int(ms["out_channel"]),
        "kernel_size": _ints(ms.get("kernel_size", ())),
        "mode": int(ms["mode"]),
        "pad_mode": _pad_mode(ms["pad_mode"]),
        "pad_list": _ints(ms.get("pad_list", (0, 0, 0, 0))),
        "stride": _last2(ms.get("stride")),
        "dilation": _last2(ms.get("dilation")),
        "group": int(ms["group"]) or 1,
        "format": fmt_name(ms["format"]),
    }


def _conv_to_ms(a: dict, ins, backprop: str = "") -> dict:
    four = backprop != ""  # the backprops keep MindSpore's 4-value stride and dilation
    out = {
        "format": fmt_code(a["format"]), "kernel_size": list(a["kernel_size"]),
        "stride": [1, 1, *a["stride"]] if four else list(a["stride"]),
        "dilation": [1, 1, *a["dilation"]] if four else list(a["dilation"]),
        "pad_mode": _pad_code(a["pad_mode"]), "pad_list": list(a["pad_list"]),
        "mode": a["mode"], "group": a["group"], "out_channel": a["out_channel"],
        "activation_type": NO_ACTIVATION,
    }
    if not four:  # in_channel from the weight: [O, C/g, kh, kw] (NCHW) or [O, kh, kw, C/g]
        w = ins[1].type.shape
        per_group = w[3] if a["format"] == "NHWC" else w[1]
        out["in_channel"] = per_group * a["group"]
    if backprop == "input":
        out["pad"] = list(a["pad_list"]) if a["pad_mode"] == "pad" else [0, 0, 0, 0]
    return out


def _pool_to_ir(ms: dict, ins) -> dict:
    if ms.get("round_mode", 0) != 0 or ms.get("global", False) or (ms.get("pad") is not None \
            and any(ms["pad"])):
        raise ValueError("only floor rounding, non-global, unpadded max pooling is supported")
    mode = _pad_mode(ms["pad_mode"])
    if mode == "pad":
        raise ValueError("pad_mode PAD is not supported for pooling")
    return {"kernel_size": _ints(ms["kernel_size"]), "strides": _ints(ms["strides"]),
            "pad_mode": mode, "format": fmt_name(ms["format"])}


def _pool_to_ms(a: dict, ins) -> dict:
    return {"kernel_size": list(a["kernel_size"]), "strides": list(a["strides"]),
            "pad_mode": _pad_code(a["pad_mode"]), "format": fmt_code(a["format"])}


def _data_format_to_ir(ms: dict, ins) -> dict:
    return {"data_format": fmt_name(ms["format"])}


def _data_format_to_ms(a: dict, ins) -> dict:
    return {"format": fmt_code(a["data_format"])}


def _bias_grad_to_ir(ms: dict, ins) -> dict:
    # The file's BiasAddGrad has no attributes (Lite's kernel sums all but the last axis). We
    # take the layout from dy's tensor format, which the converter sets to the graph's layout,
    # so a BiasAdd / BiasAddGrad pair read from one file agree and our files round-trip.
    return {"data_format": "NHWC" if ins[0].format == "NHWC" else "NCHW"}


def _layout_of(v) -> str:
    """NHWC when the tensor is stored NHWC, else NCHW (formats the IR layout ops take)."""
    return "NHWC" if getattr(v, "format", None) == "NHWC" else "NCHW"


def _fused_bn_to_ir(ms: dict, ins) -> dict:
    # FusedBatchNorm (what the converter writes for MindSpore's BatchNorm) has no format;
    # the layout is x's. ``mode`` is MindSpore's is_training.
    return {"epsilon": float(ms["epsilon"]), "momentum": float(ms["momentum"]),
            "is_training": bool(ms["mode"]), "data_format": _layout_of(ins[0])}


def _fused_bn_to_ms(a: dict, ins) -> dict:
    return {"epsilon": a["epsilon"], "momentum": a["momentum"], "mode": int(a["is_training"])}


def _bn_to_ir(ms: dict, ins) -> dict:
    return {"epsilon": float(ms["epsilon"]), "is_training": bool(ms["is_training"]),
            "data_format": fmt_name(ms["format"])}


def _bn_grad_to_ir(ms: dict, ins) -> dict:
    return {"epsilon": float(ms["epsilon"]), "is_training": bool(ms["is_training"]),
            "data_format": _layout_of(ins[0])}


def _reduce(mode: str):
    code = schema.ENUMS["ReduceMode"][1][mode]
    return (lambda ms, ins: {"keep_dims": bool(ms["keep_dims"])},
            lambda a, ins: {"keep_dims": bool(a["keep_dims"]), "mode": code, "coeff": 1.0})


def _same(*names: str):
    def to_ir(ms, ins):
        return {n: ms[n] for n in names}

    def to_ms(a, ins):
        return {n: a[n] for n in names}

    return to_ir, to_ms


# Lite's Reduction enum (REDUCTION_SUM 0, MEAN 1, NONE 2) <-> the IR's reduction strings.
_REDUCTION_NAMES = {0: "sum", 1: "mean", 2: "none"}


def _reduction_to_ir(ms: dict, ins) -> dict:
    return {"reduction": _REDUCTION_NAMES[int(ms["reduction"])]}


def _reduction_to_ms(a: dict, ins) -> dict:
    return {"reduction": {v: k for k, v in _REDUCTION_NAMES.items()}[a["reduction"]]}


def _smooth_l1_to_ms(a: dict, ins) -> dict:
    # Lite's SmoothL1Loss kernels are element-wise: a reduced form has no .ms spelling.
    if a["reduction"] != "none":
        raise ValueError(f"SmoothL1Loss reduction {a['reduction']!r} has no Lite form; "
                         "reduce the 'none' loss with ReduceMean / ReduceSum")
    return {"beta": a["beta"]}


def _pad_to_ir(ms: dict, ins) -> dict:
    mode = ms.get("padding_mode", 0)
    if mode != schema.ENUMS["PaddingMode"][1]["CONSTANT"] or ms.get("constant_value", 0.0):
        raise ValueError(f"only zero CONSTANT padding is supported (padding_mode {mode}, "
                         f"constant_value {ms.get('constant_value')})")
    return {}


def _pad_to_ms(a: dict, ins) -> dict:
    flat = [int(p) for p in a["paddings"]]
    return {"paddings": {"data": [{"data": flat[k:k + 2]} for k in range(0, len(flat), 2)]},
            "padding_mode": schema.ENUMS["PaddingMode"][1]["CONSTANT"], "constant_value": 0.0}


def _slice_to_ir(ms: dict, ins) -> dict:
    axes = _ints(ms.get("axes", ()) if ms.get("axes") is not None else ())
    if axes and axes != tuple(range(len(ins[0].type.shape))):
        raise ValueError(f"SliceFusion axes {list(axes)}: only every axis in order is supported")
    return {}


def _layer_norm_to_ir(ms: dict, ins) -> dict:
    if not ms.get("elementwise_affine", False) and len(ins) != 3:
        raise ValueError("LayerNormFusion without gamma and beta is not supported")
    return {"begin_norm_axis": int(ms["begin_norm_axis"]),
            "begin_params_axis": int(ms["begin_params_axis"]),
            "epsilon": float(ms["epsilon"])}


def _layer_norm_to_ms(a: dict, ins) -> dict:
    return {"begin_norm_axis": int(a["begin_norm_axis"]), "epsilon": float(a["epsilon"]),
            "elementwise_affine": True, "begin_params_axis": int(a["begin_params_axis"])}


def _layer_norm_grad_to_ir(ms: dict, ins) -> dict:
    # Lite's LayerNormGrad has no epsilon (its kernel adds 1e-12); MindSpore's gradient uses
    # the forward's, which the LayerNorm that made the variance (input 2) still holds.
    out = {"begin_norm_axis": int(ms["begin_norm_axis"]),
           "begin_params_axis": int(ms["begin_params_axis"])}
    fwd = ins[2].producer if len(ins) > 2 else None
    if fwd is not None and fwd.op == "LayerNorm":
        out["epsilon"] = float(fwd.attrs["epsilon"])
    return out
def _matmul_ir(ins) -> str:
    """MatMulFusion reads as MatMul for 2-D operands, else as BatchMatMul."""
    return "MatMul" if all(len(v.type.shape) == 2 for v in ins[:2]) else "BatchMatMul"


_MASK_NAMES = ("begin_mask", "end_mask", "ellipsis_mask", "new_axis_mask", "shrink_axis_mask")


def _masks_to_ir(ms: dict, ins) -> dict:
    return {m: int(ms.get(m, 0)) for m in _MASK_NAMES}


def _masks_to_ms(a: dict, ins) -> dict:
    return {m: int(a[m]) for m in _MASK_NAMES}


def _prelu_to_ir(ms: dict, ins) -> dict:
    # Lite runs PReLUFusion in the layout its input is tagged with (nnacl GetChannel): a 4-D
    # NHWC input has its channels last; 2-D inputs have them on axis 1 either way.
    four_d = len(ins[0].type.shape) == 4
    return {"data_format": "NHWC" if four_d and ins[0].format == "NHWC" else "NCHW"}


def _prelu_to_ms(a: dict, ins) -> dict:
    # nnacl's PRelu applies a per-channel slope along the innermost axis and finds the channel
    # count only for 2-D and 4-D inputs (GetChannel): other forms have no Lite spelling.
    x, w = ins[0].type.shape, ins[1].type.shape
    shared = int(np.prod(w)) == 1
    if not shared and not (len(x) == 2 or (len(x) == 4 and a["data_format"] == "NHWC")):
        raise ValueError(f"PReLU with {int(np.prod(w))} slopes on a {len(x)}-D "
                         f"{a['data_format']} input has no Lite form (its kernel takes "
                         "per-channel slopes on 2-D and NHWC 4-D inputs)")
    return {"channel_shared": shared}


@dataclass(frozen=True)
class ConstInput:
    """An IR attribute the file passes as a constant int32 input at ``index``."""

    index: int
    attr: str
    scalar: bool = False  # ExpandDims axis: a 1-element tensor <-> an int


@dataclass(frozen=True)
class Row:
    ir: str
    ms: str
    to_ir: Callable[[dict, list], dict[str, Any]] = lambda ms, ins: {}
    to_ms: Callable[[dict, list], dict[str, Any]] = lambda a, ins: {}
    select: dict[str, int] = field(default_factory=dict)  # member attrs that pick this row
    const_inputs: tuple[ConstInput, ...] = ()
    fused_activation: bool = False  # member has activation_type the reader splits off
    fused_bias: bool = False  # member may take a bias as its third input
    write: bool = True  # False: read-only alias (the writer uses another member)
    # The IR op a file node of this row reads as, by its inputs (default: ``ir``): a
    # MatMulFusion with batch axes is a BatchMatMul. A row only ever picked this way (a
    # later row of the same member) is the writer's.
    ir_for: Callable[[list], str] | None = None

    def ir_op(self, inputs) -> str:
        return self.ir if self.ir_for is None else self.ir_for(inputs)


def _act(ir: str, ms: str, kind: str) -> Row:
    code = ACT[kind]
    return Row(ir, ms, select={"activation_type": code},
               to_ms=lambda a, ins: {"activation_type": code})


ROWS: tuple[Row, ...] = (
    Row("MatMul", "MatMulFusion", *_same("transpose_a", "transpose_b"),
        fused_activation=True, fused_bias=True, ir_for=_matmul_ir),
    Row("BiasAdd", "BiasAdd", _data_format_to_ir, _data_format_to_ms),
    Row("BiasAddGrad", "BiasAddGrad", _bias_grad_to_ir),
    Row("Add", "AddFusion", fused_activation=True),
    Row("Sub", "SubFusion", fused_activation=True),
    Row("Mul", "MulFusion", fused_activation=True),
    Row("RealDiv", "DivFusion", fused_activation=True),
    Row("RealDiv", "RealDiv", write=False),
    Row("AddN", "AddN"),
    Row("Reshape", "Reshape", const_inputs=(ConstInput(1, "shape"),)),
    Row("Flatten", "Flatten", select={"axis": 1}),
    Row("ExpandDims", "ExpandDims", const_inputs=(ConstInput(1, "axis", scalar=True),)),
    Row("Transpose", "Transpose", const_inputs=(ConstInput(1, "perm"),)),
    _act("ReLU", "Activation", "RELU"),
    _act("Sigmoid", "Activation", "SIGMOID"),
    _act("Tanh", "Activation", "TANH"),
    _act("ReluGrad", "ActivationGrad", "RELU"),
    _act("SigmoidGrad", "ActivationGrad", "SIGMOID"),
    _act("TanhGrad", "ActivationGrad", "TANH"),
    Row("SparseSoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits",
        *_same("is_grad")),
    Row("SoftmaxCrossEntropyWithLogits", "SoftmaxCrossEntropyWithLogits"),
    Row("Conv2D", "Conv2DFusion", _conv_to_ir, _conv_to_ms,
        fused_activation=True, fused_bias=True),
    Row("Conv2DBackpropInput", "Conv2DBackpropInputFusion", _conv_to_ir,
        lambda a, ins: _conv_to_ms(a, ins, "input"),
        const_inputs=(ConstInput(2, "input_sizes"),)),
    Row("Conv2DBackpropFilter", "Conv2DBackpropFilterFusion", _conv_to_ir,
        lambda a, ins: _conv_to_ms(a, ins, "filter"),
        const_inputs=(ConstInput(2, "filter_sizes"),)),
    Row("MaxPool", "MaxPoolFusion", _pool_to_ir, _pool_to_ms, fused_activation=True),
    Row("MaxPoolGrad", "MaxPoolGrad", _pool_to_ir, _pool_to_ms),
    Row("Adam", "Adam", *_same("use_locking", "use_nesterov")),
    Row("ApplyMomentum", "ApplyMomentum", *_same("use_nesterov", "use_locking",
                                                 "gradient_scale")),
    Row("SGD", "SGD", lambda ms, ins: {"nesterov": ms["nesterov"],
                                       "dampening": ms["dampening"],
                                       "weight_decay": ms["weight_decay"]},
        lambda a, ins: {"nesterov": a["nesterov"], "dampening": a["dampening"],
                        "weight_decay": a["weight_decay"]}),
    Row("Assign", "Assign"),
    Row("AssignAdd", "AssignAdd"),
    Row("BatchNorm", "FusedBatchNorm", _fused_bn_to_ir, _fused_bn_to_ms),
    Row("BatchNorm", "BatchNorm", _bn_to_ir, write=False),
    Row("BatchNormGrad", "BatchNormGrad", _bn_grad_to_ir,
        lambda a, ins: {"epsilon": a["epsilon"], "is_training": a["is_training"]}),
    Row("ReduceMean", "ReduceFusion", *_reduce("ReduceMean"),
        select={"mode": schema.ENUMS["ReduceMode"][1]["ReduceMean"]},
        const_inputs=(ConstInput(1, "axis"),)),
    Row("ReduceSum", "ReduceFusion", *_reduce("ReduceSum"),
        select={"mode": schema.ENUMS["ReduceMode"][1]["ReduceSum"]},
        const_inputs=(ConstInput(1, "axis"),)),
    Row("Tile", "TileFusion", lambda ms, ins: {},
        lambda a, ins: {"dims": list(range(len(a["multiples"])))},
        const_inputs=(ConstInput(1, "multiples"),)),
    Row("Neg", "Neg"),
    _act("ReLU6", "Activation", "RELU6"),
    _act("ReLU6Grad", "ActivationGrad", "RELU6"),
    _act("HSigmoid", "Activation", "HSIGMOID"),
    _act("HSigmoidGrad", "ActivationGrad", "HSIGMOID"),
    _act("HSwish", "Activation", "HSWISH"),
    _act("HSwishGrad", "ActivationGrad", "HSWISH"),
    Row("Sqrt", "Sqrt"),
    Row("SqrtGrad", "SqrtGrad"),
    Row("Exp", "ExpFusion", select={"base": -1.0, "scale": 1.0, "shift": 0.0}),
    Row("Log", "Log"),
    Row("Maximum", "Maximum"),
    Row("Minimum", "Minimum"),
    Row("MaximumGrad", "MaximumGrad", *_same("grad_x", "grad_y")),
    Row("MinimumGrad", "MinimumGrad", *_same("grad_x", "grad_y")),
    Row("Softmax", "Softmax", lambda ms, ins: {"axis": _ints(ms.get("axis", (-1,)))},
        lambda a, ins: {"axis": list(a["axis"])}),
    Row("LogSoftmax", "LogSoftmax", lambda ms, ins: {"axis": int(ms["axis"])},
        lambda a, ins: {"axis": int(a["axis"])}),
    Row("Dropout", "Dropout", lambda ms, ins: {"keep_prob": float(ms["keep_prob"])},
        lambda a, ins: {"keep_prob": a["keep_prob"]}),
    Row("DropoutGrad", "DropoutGrad", lambda ms, ins: {"keep_prob": float(ms["keep_prob"])},
        lambda a, ins: {"keep_prob": a["keep_prob"]}),
    Row("AvgPool", "AvgPoolFusion", _pool_to_ir, _pool_to_ms, fused_activation=True),
    Row("AvgPoolGrad", "AvgPoolGrad", _pool_to_ir, _pool_to_ms),
    Row("Squeeze", "Squeeze", lambda ms, ins: {"axis": _ints(ms.get("axis", ()))},
        lambda a, ins: {"axis": list(a["axis"])}),
    Row("SigmoidCrossEntropyWithLogits", "SigmoidCrossEntropyWithLogits"),
    Row("SigmoidCrossEntropyWithLogitsGrad", "SigmoidCrossEntropyWithLogitsGrad"),
    Row("Concat", "Concat", lambda ms, ins: {"axis": int(ms["axis"])},
        lambda a, ins: {"axis": int(a["axis"])}),
    Row("SplitWithSize", "Split",
        lambda ms, ins: {"split_size": _ints(ms["size_splits"]), "dim": int(ms["axis"])},
        lambda a, ins: {"output_num": len(a["split_size"]), "size_splits": list(a["split_size"]),
                        "axis": int(a["dim"])}),
    # Cast's target TypeId and OneHot's depth are constant int32 inputs in Lite.
    Row("Cast", "Cast", const_inputs=(ConstInput(1, "to", scalar=True),)),
    Row("OneHot", "OneHot", lambda ms, ins: {"axis": int(ms["axis"])},
        lambda a, ins: {"axis": int(a["axis"])},
        const_inputs=(ConstInput(1, "depth", scalar=True),)),
    Row("Pow", "PowFusion", select={"scale": 1.0, "shift": 0.0}),
    Row("Square", "Square"),
    Row("Abs", "Abs"),
    Row("AbsGrad", "AbsGrad"),
    # A Sign the converter could not fold into AbsGrad (converter/passes.py): the schema's
    # sign activation.
    _act("Sign", "Activation", "SIGN"),
    *(Row(ir, ms, select={"activation_type": ACT["ELU"]},
          to_ir=lambda m, ins: {"alpha": float(m.get("alpha", 1.0))},
          to_ms=lambda a, ins: {"activation_type": ACT["ELU"], "alpha": float(a["alpha"])})
      for ir, ms in (("Elu", "Activation"), ("EluGrad", "ActivationGrad"))),
    *(Row(name, name) for name in ("Less", "Greater", "Equal", "GreaterEqual", "LessEqual",
                                   "NotEqual", "LogicalAnd", "LogicalOr", "LogicalNot")),
    Row("Select", "Select"),
    Row("ReduceMax", "ReduceFusion", *_reduce("ReduceMax"),
        select={"mode": schema.ENUMS["ReduceMode"][1]["ReduceMax"]},
        const_inputs=(ConstInput(1, "axis"),)),
    # Lite's GatherD takes dim as a constant int32 input between x and the index.
    Row("GatherD", "GatherD", const_inputs=(ConstInput(1, "dim", scalar=True),)),
    # Lite's Fill: the value, then the shape as a constant int32 input.
    Row("FillV2", "Fill", const_inputs=(ConstInput(1, "shape"),)),
    # Abs / AbsGrad (tags 1, 183) wait until tests/test_ms_format.py and the hostile fixture
    # ms_unsupported_ops.ms stop using Abs as their example of an unsupported op.
    Row("GeLU", "Activation", select={"activation_type": ACT["GELU"], "approximate": True},
        to_ms=lambda a, ins: {"activation_type": ACT["GELU"], "approximate": True}),
    _act("GeLUGrad", "ActivationGrad", "GELU"),
    Row("SmoothL1Loss", "SmoothL1Loss",
        lambda ms, ins: {"beta": float(ms["beta"]), "reduction": "none"}, _smooth_l1_to_ms),
    Row("SmoothL1LossGrad", "SmoothL1LossGrad",
        lambda ms, ins: {"beta": float(ms["beta"]), "reduction": "none"}, _smooth_l1_to_ms),
    Row("BinaryCrossEntropy", "BinaryCrossEntropy", _reduction_to_ir, _reduction_to_ms),
    Row("BinaryCrossEntropyGrad", "BinaryCrossEntropyGrad", _reduction_to_ir, _reduction_to_ms),
    # Lite's NLLLoss has no ignore_index: files give the default (-100).
    Row("NLLLoss", "NLLLoss", _reduction_to_ir, _reduction_to_ms),
    Row("NLLLossGrad", "NLLLossGrad", _reduction_to_ir, _reduction_to_ms),
    # Pad's paddings (flattened pairs), Slice's begin / size and Gather's axis are constant
    # int32 inputs in Lite; Lite's Gather has no batch_dims (the IR's is always 0).
    Row("Pad", "PadFusion", _pad_to_ir, _pad_to_ms, const_inputs=(ConstInput(1, "paddings"),)),
    Row("Slice", "SliceFusion", _slice_to_ir,
        lambda a, ins: {"axes": list(range(len(a["begin"])))},
        const_inputs=(ConstInput(1, "begin"), ConstInput(2, "size"))),
    Row("Gather", "Gather", lambda ms, ins: {"batch_dims": 0},
        const_inputs=(ConstInput(2, "axis", scalar=True),)),
    # Tag 220 of the 2.7 schema: Lite 2.0 runtimes cannot load it (docs/OPS.md).
    Row("AdamWeightDecay", "AdamWeightDecay", *_same("use_locking")),
    # LayerNorm is LayerNormFusion (tag 75) with elementwise_affine set, as the converter's
    # MoveAttrMapLayerNorm writes it; LayerNormGrad (tag 186) keeps MindSpore's inputs (x, dy,
    # variance, mean, gamma) in their order, which is the order Lite's kernel reads.
    Row("LayerNorm", "LayerNormFusion", _layer_norm_to_ir, _layer_norm_to_ms),
    Row("LayerNormGrad", "LayerNormGrad", _layer_norm_grad_to_ir,
        lambda a, ins: {"begin_norm_axis": int(a["begin_norm_axis"]),
                        "begin_params_axis": int(a["begin_params_axis"])}),
    # nn.SiLU is Lite's swish activation (its gradient is written as Sigmoid / Mul /
    # ActivationGrad{SIGMOID} / Add: Lite has no SWISH gradient); nn.Embedding's gradient is
    # UnsortedSegmentSum, num_segments a constant int32 input 2 (nnacl's infer reads it there).
    _act("SiLU", "Activation", "SWISH"),
    Row("UnsortedSegmentSum", "UnsortedSegmentSum",
        const_inputs=(ConstInput(2, "num_segments", scalar=True),)),
    # -- tensor slicing and batched ops.matmul (tests/fixtures/reference: slice_momentum,
    # batchmatmul_momentum) ------------------------------------------------------------------
    # Lite's StridedSlice(x, begin, end, strides) and StridedSliceGrad(dy, shapex, begin,
    # end, strides): the masks are attributes, the rest constant int32 inputs.
    Row("StridedSlice", "StridedSlice", _masks_to_ir, _masks_to_ms,
        const_inputs=(ConstInput(1, "begin"), ConstInput(2, "end"), ConstInput(3, "strides"))),
    Row("StridedSliceGrad", "StridedSliceGrad", _masks_to_ir, _masks_to_ms,
        const_inputs=(ConstInput(1, "shapex"), ConstInput(2, "begin"), ConstInput(3, "end"),
                      ConstInput(4, "strides"))),
    # Lite's MatMulFusion is batched and broadcasting: BatchMatMul writes as it too (a file's
    # MatMulFusion reads back through the MatMul row's ir_for, by its operands' ranks).
    Row("BatchMatMul", "MatMulFusion", *_same("transpose_a", "transpose_b"),
        fused_activation=True, fused_bias=True),
    # -- nn.GroupNorm (tests/fixtures/reference/groupnorm_momentum) --------------------------
    # GroupNorm is GroupNormFusion{num_groups, epsilon, affine} (x, gamma, beta in NCHW). Lite's
    # kernel writes output 0 only: the IR's mean and rstd outputs stay in the file for the
    # IR's sake, and nothing in a converted file reads them (GroupNormGrad has no Lite form:
    # the converter writes it with other ops, recomputing the statistics: converter/passes.py).
    Row("GroupNorm", "GroupNormFusion",
        lambda ms, ins: {"num_groups": int(ms["num_groups"]), "epsilon": float(ms["epsilon"])},
        lambda a, ins: {"num_groups": int(a["num_groups"]), "epsilon": float(a["epsilon"]),
                        "affine": True}),
    # -- nn.PReLU, nn.Mish (tests/fixtures/reference: prelu_momentum, mish_momentum) ----------
    # Softplus is Lite's activation (Mish is written as Softplus / Tanh / Mul); PReLU is
    # PReLUFusion with the slope as input 1. PReLUGrad and Dropout2D have no Lite kernel: the
    # converter writes them as other ops (converter/lite_forms.py).
    _act("Softplus", "Activation", "SOFTPLUS"),
    Row("PReLU", "PReLUFusion", _prelu_to_ir, _prelu_to_ms),
)

BY_IR: dict[str, Row] = {r.ir: r for r in ROWS if r.write}
_BY_MS: dict[str, list[Row]] = {}
for _r in ROWS:
    _BY_MS.setdefault(_r.ms, []).append(_r)


def row_for_member(member: str, attrs: dict) -> Row | None:
    """The row a file node maps to, or None (unsupported member or selector value)."""
    for r in _BY_MS.get(member, ()):
        if all(attrs.get(k) == v for k, v in r.select.items()):
            return r
    return None


def describe_member(member: str, attrs: dict) -> str:
    """How an unsupported node is named in errors: ``Activation{activation_type=ELU}``."""
    rows = _BY_MS.get(member)
    if not rows:
        return member
    parts = []
    for k in rows[0].select:
        v = attrs.get(k)
        if k == "activation_type":
            v = schema.enum_name("ActivationType", v) or v
        parts.append(f"{k}={v}")
    return f"{member}{{{', '.join(parts)}}}"
