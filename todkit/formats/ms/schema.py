"""The `.ms` FlatBuffers schema (``namespace mindspore.schema``), described as data.

Field order, types and defaults follow MindSpore Lite's ``schema/model.fbs``, ``ops.fbs`` and
``ops_types.fbs`` (the tables the 2.0 converter writes; reference/formats.md section 2). The
generic reader and writer (``fbread``/``fbwrite``) walk these descriptions, and
``scripts/gen_ms_fbs.py`` prints them as a ``.fbs`` so ``flatc`` can cross-check our reading.

Types: a scalar name (``bool byte ubyte short ushort int uint long ulong float double``), an
enum name (stored as its underlying scalar), ``string``, ``[T]`` (vector), a table name, or a
union name (occupies two vtable slots: the ``ubyte`` member tag, then the member table).
"""

from __future__ import annotations

from typing import Any, NamedTuple

FILE_IDENTIFIER = b"MSL2"
ROOT_TABLE = "MetaGraph"

# scalar type -> (struct code, size in bytes); flatbuffers stores everything little-endian.
SCALARS = {
    "bool": ("B", 1), "byte": ("b", 1), "ubyte": ("B", 1), "short": ("h", 2),
    "ushort": ("H", 2), "int": ("i", 4), "uint": ("I", 4), "long": ("q", 8),
    "ulong": ("Q", 8), "float": ("f", 4), "double": ("d", 8),
}


class Field(NamedTuple):
    name: str
    type: str
    default: Any = None  # scalars and enums only; None means 0 / false
    deprecated: bool = False


def _enum(base: str, names: str, start: int = 0, **explicit: int):
    values, v = {}, start
    for n in names.split():
        values[n] = explicit.get(n, v)
        v = values[n] + 1
    return base, values


# enum name -> (underlying scalar, {member: value})
ENUMS = {
    "Format": _enum("int", "NCHW NHWC NHWC4 HWKC HWCK KCHW CKHW KHWC CHWK HW HW4 NC NC4 NC4HW4 "
                           "NUM_OF_FORMAT NCDHW NWC NCW NC8HW8"),
    # 2.0 ended at FAST_GELU 20, UNKNOWN 21; 2.7 added CELU 27 and moved UNKNOWN to 40. We
    # never write either, and reading accepts any byte (the op table names what it supports).
    "ActivationType": _enum("byte", "NO_ACTIVATION RELU SIGMOID RELU6 ELU LEAKY_RELU ABS RELU1 "
                                    "SOFTSIGN SOFTPLUS TANH SELU HSWISH HSIGMOID THRESHOLDRELU "
                                    "LINEAR HARD_TANH SIGN SWISH GELU FAST_GELU UNKNOWN"),
    "PadMode": _enum("byte", "PAD SAME VALID"),
    "RoundMode": _enum("byte", "FLOOR CEIL"),
    "ReduceMode": _enum("byte", "ReduceMean ReduceMax ReduceMin ReduceProd ReduceSum "
                                "ReduceSumSquare ReduceASum ReduceAll ReduceL2"),
    "Reduction": _enum("byte", "REDUCTION_SUM MEAN NONE"),
    "PaddingMode": _enum("byte", "CONSTANT REFLECT SYMMETRIC MODE_RESERVED"),
    "QuantType": _enum("int", "QUANT_NONE AwareTraining WeightQuant PostTraining QUANT_WEIGHT "
                              "QUANT_ALL QUANT_DYNAMIC"),
    "WeightQuantCompressType": _enum("int", "NONE INDEXING SPARSE FSE BITPACKING FSE_INT "
                                            "FSE_INFER"),
}

# The PrimitiveType union in tag order (tag = position + 1; 0 is NONE), as in
# reference/primitive_index.tsv (2.7 schema). Tags 1..213 are the same in the 2.0 schema, which
# then had ScatterElements, Triu, Tril at 214..216; no op we read or write is above 213.
_PRIMITIVE_TYPES_TEXT = """
Abs Activation ActivationGrad Adam AddFusion AdderFusion AddGrad AddN All ApplyMomentum
ArgMaxFusion ArgMinFusion Assert Assign AssignAdd AudioSpectrogram AvgPoolFusion AvgPoolGrad
BatchNorm BatchNormGrad BatchToSpace BatchToSpaceND BiasAdd BinaryCrossEntropy
BinaryCrossEntropyGrad BiasAddGrad BroadcastTo Cast Ceil Clip Concat Attention
Conv2DBackpropFilterFusion Conv2DBackpropInputFusion Conv2DFusion Conv2dTransposeFusion Cos
ConstantOfShape Crop CustomExtractFeatures CustomNormalize CustomPredict DeConv2DGradFilter Depend
DepthToSpace DetectionPostProcess DivFusion DivGrad Dropout DropoutGrad Elu Eltwise Equal
EmbeddingLookupFusion ExpFusion ExpandDims FakeQuantWithMinMaxVars
FakeQuantWithMinMaxVarsPerChannel FftReal FftImag Flatten FlattenGrad Floor FloorDiv FloorMod Fill
FullConnection FusedBatchNorm Gather GatherNd Greater GreaterEqual HashtableLookup InstanceNorm
LayerNormFusion LeakyRelu Less LessEqual Log LogGrad LogicalAnd LogicalNot LogicalOr
LpNormalization LRN LshProjection LSTM L2NormalizeFusion MatMulFusion Maximum MaximumGrad
MaxPoolFusion MaxPoolGrad SwitchLayer Mfcc Minimum MinimumGrad Mod MulFusion MulGrad Neg NegGrad
NotEqual NonMaxSuppression OneHot OnesLike PadFusion PartialFusion PowerGrad PowFusion PriorBox
PReLUFusion QuantDTypeCast Rank Range Reciprocal RealDiv ReduceFusion Reshape Resize
ReverseSequence ReverseV2 Rfft ROIPooling Round Rsqrt ScaleFusion ScatterNd SGD Shape
SigmoidCrossEntropyWithLogits SigmoidCrossEntropyWithLogitsGrad Sin SkipGram SliceFusion
SmoothL1Loss SmoothL1LossGrad Softmax SoftmaxCrossEntropyWithLogits SpaceToBatch SpaceToBatchND
SpaceToDepth SparseSoftmaxCrossEntropyWithLogits SparseToDense Split Sqrt Squeeze Square
SquaredDifference Stack StridedSlice SubFusion SubGrad Switch TensorListFromTensor
TensorListGetItem TensorListReserve TensorListSetItem TensorListStack TileFusion TopKFusion
Transpose Unique UnsortedSegmentSum Unsqueeze Unstack LSTMGrad Where ZerosLike Select
ScatterNdUpdate GRU NonZero InvertPermutation Size RandomStandardNormal CropAndResize Erf
StridedSliceGrad IsFinite LinSpace UniformReal AbsGrad RsqrtGrad SqrtGrad LayerNormGrad ResizeGrad
Splice LogSoftmax Call Custom CumSum SplitWithOverlap GenOP RaggedRange GLU TensorArray
TensorArrayRead TensorArrayWrite Affine AllGather ReduceScatter DynamicQuant LSTMGradData
LSTMGradWeight RandomNormal NLLLoss NLLLossGrad FormatTranspose GatherD GroupNormFusion Log1p
TensorScatterAdd SparseFillEmptyRows SparseReshape SparseSegmentSum ScatterElements Triu Tril
AdamWeightDecay FillV2
"""
PRIMITIVE_TYPES = _PRIMITIVE_TYPES_TEXT.split()

UNIONS = {"PrimitiveType": PRIMITIVE_TYPES}
PRIMITIVE_TAG = {name: i + 1 for i, name in enumerate(PRIMITIVE_TYPES)}

F = Field
_CONV = [
    F("format", "Format", 0), F("kernel_size", "[long]"), F("stride", "[long]"),
    F("dilation", "[long]"), F("pad_mode", "PadMode", 0), F("pad_list", "[long]"),
    F("mode", "long", 0), F("group", "long", 0), F("in_channel", "long", 0),
    F("out_channel", "long", 0), F("activation_type", "ActivationType", 0),
]
_POOL = [
    F("kernel_size", "[long]"), F("strides", "[long]"), F("pad", "[long]"),
    F("pad_mode", "PadMode", 0), F("round_mode", "RoundMode", 0), F("format", "Format", 0),
    F("global", "bool", False), F("activation_type", "ActivationType", 0),
]
_ACT_ONLY = [F("activation_type", "ActivationType", 0)]

# Attribute tables of the union members todkit reads and writes (ops.fbs order). Members not
# listed here are known by tag (so files using them get a clear "unsupported op" error) and
# verified as tables, but their fields are not decoded.
PRIMITIVE_TABLES: dict[str, list[Field]] = {
    "Activation": [F("activation_type", "ActivationType", 0), F("alpha", "float", 0.0),
                   F("min_val", "float", 0.0), F("max_val", "float", 0.0),
                   F("approximate", "bool", False)],
    "ActivationGrad": [F("activation_type", "ActivationType", 0), F("alpha", "float", 0.0)],
    "Abs": [],
    "Equal": [], "Fill": [], "GatherD": [], "Greater": [], "GreaterEqual": [], "Less": [],
    "LessEqual": [], "LogicalAnd": [], "LogicalNot": [], "LogicalOr": [], "NotEqual": [],
    "Select": [],
    "AbsGrad": [],
    "AdamWeightDecay": [F("use_locking", "bool", False)],  # tag 220: 2.7 schema only
    "BinaryCrossEntropy": [F("reduction", "Reduction", 0)],
    "BinaryCrossEntropyGrad": [F("reduction", "Reduction", 1)],
    "Cast": [],
    "Concat": [F("axis", "long", 0)],
    "NLLLoss": [F("reduction", "Reduction", 0)],
    "NLLLossGrad": [F("reduction", "Reduction", 0)],
    "OneHot": [F("axis", "long", 0)],
    "PowFusion": [F("scale", "float", 1.0), F("shift", "float", 0.0)],
    "SmoothL1Loss": [F("beta", "float", 0.0)],
    "SmoothL1LossGrad": [F("beta", "float", 0.0)],
    "Split": [F("output_num", "long", 0), F("size_splits", "[long]"), F("axis", "long", 0)],
    "Square": [],
    # PadFusion's paddings also travel as its int32 input 1, which Lite's kernel reads.
    "PadFusion": [F("paddings", "Vec2D"), F("padding_mode", "PaddingMode", 0),
                  F("constant_value", "float", 0.0)],
    "SliceFusion": [F("axes", "[long]")],
    "Gather": [],
    "Adam": [F("use_locking", "bool", False), F("use_nesterov", "bool", False)],
    "AddFusion": _ACT_ONLY,
    "AddN": [],
    "ApplyMomentum": [F("use_nesterov", "bool", False), F("use_locking", "bool", False),
                      F("gradient_scale", "float", 0.0)],
    "Assign": [],
    "AssignAdd": [],
    "AvgPoolFusion": _POOL,
    "AvgPoolGrad": [F("kernel_size", "[long]"), F("strides", "[long]"),
                    F("pad_mode", "PadMode", 0), F("format", "Format", 0)],
    "BatchNorm": [F("epsilon", "float", 0.0), F("format", "Format", 0),
                  F("is_training", "bool", False)],
    "BatchNormGrad": [F("epsilon", "float", 0.0), F("is_training", "bool", False)],
    "BiasAdd": [F("format", "Format", 0)],
    "BiasAddGrad": [],
    "Conv2DBackpropFilterFusion": _CONV,
    "Conv2DBackpropInputFusion": _CONV[:5] + [F("pad", "[long]")] + _CONV[5:],
    "Conv2DFusion": _CONV,
    "DivFusion": _ACT_ONLY,
    "Dropout": [F("keep_prob", "float", 0.5)],
    "DropoutGrad": [F("keep_prob", "float", 0.0)],
    "ExpFusion": [F("base", "float", -1.0), F("scale", "float", 1.0), F("shift", "float", 0.0)],
    "ExpandDims": [],
    "Flatten": [F("axis", "long", 1)],
    "FusedBatchNorm": [F("epsilon", "float", 0.0001), F("momentum", "float", 0.9),
                       F("mode", "long", 0)],
    "Log": [],
    "LogSoftmax": [F("axis", "long", 0)],
    "MatMulFusion": [F("transpose_a", "bool", False), F("transpose_b", "bool", False),
                     F("activation_type", "ActivationType", 0)],
    "MaxPoolFusion": _POOL,
    "Maximum": [],
    "MaximumGrad": [F("grad_x", "bool", False), F("grad_y", "bool", False)],
    "Minimum": [],
    "MinimumGrad": [F("grad_x", "bool", False), F("grad_y", "bool", False)],
    "MaxPoolGrad": [F("kernel_size", "[long]"), F("strides", "[long]"),
                    F("pad_mode", "PadMode", 0), F("format", "Format", 0)],
    "MulFusion": _ACT_ONLY,
    "Neg": [],
    "RealDiv": [],
    "ReduceFusion": [F("keep_dims", "bool", False), F("mode", "ReduceMode", 0),
                     F("reduce_to_end", "bool", False), F("coeff", "float", 0.0)],
    "Reshape": [],
    "SGD": [F("nesterov", "bool", False), F("dampening", "float", 0.0),
            F("weight_decay", "float", 0.0)],
    "SigmoidCrossEntropyWithLogits": [],
    "SigmoidCrossEntropyWithLogitsGrad": [],
    "Softmax": [F("axis", "[long]")],
    "SoftmaxCrossEntropyWithLogits": [],
    "SparseSoftmaxCrossEntropyWithLogits": [F("is_grad", "bool", False)],
    "Sqrt": [],
    "SqrtGrad": [],
    "Squeeze": [F("axis", "[long]")],
    "SubFusion": _ACT_ONLY,
    "TileFusion": [F("dims", "[long]")],
    "Transpose": [],
    # elementwise_affine: the converter sets it (MoveAttrMapLayerNorm); epsilon defaults to
    # 1e-5 in the schema, the converter copies MindSpore's (1e-7 when the primitive has none).
    "LayerNormFusion": [F("begin_norm_axis", "long", 0), F("epsilon", "float", 1e-5),
                        F("elementwise_affine", "bool", False),
                        F("begin_params_axis", "long", 0)],
    "LayerNormGrad": [F("begin_norm_axis", "long", 0), F("begin_params_axis", "long", 0)],
    # nn.Embedding's gradient (ops.fbs: no fields; num_segments is input 2)
    "UnsortedSegmentSum": [],
    # tensor slicing (tests/fixtures/reference/slice_momentum): the five masks, ops.fbs order
    **{name: [F(m, "long", 0) for m in ("begin_mask", "end_mask", "ellipsis_mask",
                                        "new_axis_mask", "shrink_axis_mask")]
       for name in ("StridedSlice", "StridedSliceGrad")},
    # nn.GroupNorm's forward (tag 211; nnacl's kernel reads x, gamma, beta whatever affine says)
    "GroupNormFusion": [F("num_groups", "long", 0), F("epsilon", "float", 1e-5),
                        F("affine", "bool", True)],
    # nn.PReLU (ops.fbs: the slope is input 1; nnacl also shares it when it has one value)
    "PReLUFusion": [F("channel_shared", "bool", False)],
}

TABLES: dict[str, list[Field]] = {
    # PadFusion's paddings (ops.fbs Vec2D of Vec).
    "Vec": [F("data", "[long]")],
    "Vec2D": [F("data", "[Vec]")],
    "QuantParam": [
        F("scale", "double", 1.0), F("zeroPoint", "int", 0), F("min", "double", 0.0),
        F("max", "double", 0.0), F("narrowRange", "bool", True), F("numBits", "int", 8),
        F("inited", "bool", False), F("varCorr", "float", 1.0), F("meanCorr", "float", 0.0),
        F("dstDtype", "int", 32), F("roundType", "int", 1), F("multiplier", "int", 1),
    ],
    "ExternalData": [
        F("checkSum", "string"), F("location", "string"), F("offset", "long", 0),
        F("length", "long", -1),
    ],
    "Tensor": [
        F("nodeType", "int", 0), F("dataType", "int", 0), F("dims", "[int]"),
        F("format", "Format", 0), F("refCount", "int", 0), F("offset", "int", 0),
        F("data", "[ubyte]"), F("quantParams", "[QuantParam]"), F("quantClusters", "[float]"),
        F("name", "string"), F("enableHuffmanCode", "bool", False),
        F("weightQuantCompressType", "WeightQuantCompressType", 0),
        F("externalData", "[ExternalData]"),
    ],
    "Primitive": [F("value", "PrimitiveType")],
    "CNode": [
        F("name", "string"), F("nodeType", "int", 0, deprecated=True),
        F("primitive", "Primitive"), F("inputIndex", "[uint]"), F("outputIndex", "[uint]"),
        F("quantType", "QuantType", 0), F("deviceType", "int", -1),
    ],
    "SubGraph": [
        F("name", "string"), F("inputIndices", "[uint]"), F("outputIndices", "[uint]"),
        F("nodeIndices", "[uint]"), F("tensorIndices", "[uint]"),
    ],
    "MetaGraph": [
        F("name", "string"), F("version", "string"), F("fmkType", "int", 0),
        F("inputIndex", "[uint]"), F("outputIndex", "[uint]"), F("mempoolSize", "uint", 0),
        F("nodes", "[CNode]"), F("allTensors", "[Tensor]"), F("subGraph", "[SubGraph]"),
        F("obfuscate", "bool", False), F("obfMetaData", "[ubyte]"),
    ],
}
TABLES.update(PRIMITIVE_TABLES)


def slot_count(table: str) -> int:
    """Vtable slots of a table: one per field, two per union field."""
    return sum(2 if f.type in UNIONS else 1 for f in TABLES.get(table, ()))


def enum_name(enum: str, value: int) -> str | None:
    for k, v in ENUMS[enum][1].items():
        if v == value:
            return k
    return None


def enum_value(enum: str, name: str) -> int:
    return ENUMS[enum][1][name]
