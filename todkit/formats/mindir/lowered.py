"""MindSpore forms the IR spells with its own ops, read only (the writer never meets these
names): ``LOWERED`` maps a MindSpore primitive to an ``OpSpec`` whose ``lower(graph, values,
attrs, name)`` emits the IR nodes and returns the one standing for the file's node. Mostly
MindSpore 2.10's own gradient forms and composite layers, written with ops MindSpore Lite has
kernels for (docs/OPS.md, "Reading 2.10's own gradient forms"; each checked by a reference
run recorded with MindSpore 2.10 under tests/fixtures/reference/).
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import NotSupportedError
from todkit.formats.mindir.optable import _BOOL, _CONV_COMMON, OPTABLE, Attr, OpSpec
from todkit.opset.build import emit
from todkit.opset.extra_layers import silu_grad
from todkit.opset.more_activations import mish, softplus_grad


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
# -- nn.Mish as 2.10 exports it (opset/more_activations.py) ------------------------------
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


def read_spec(op: str) -> OpSpec | None:
    """The spec a file's ``op`` is read by: a lowered MindSpore form, else the table's."""
    return LOWERED.get(op) or OPTABLE.get(op)
