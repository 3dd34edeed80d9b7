"""The NHWC conversion MindSpore Lite's converter makes (``ToNHWCFormat`` then
``DecreaseTransposeAlgo``), reproduced from what it leaves in the real ``lite-2.0/lenet_tod.ms``.

What the real output shows, and what this pass therefore does:
- every 4-D graph input becomes NHWC ([32,32,32,1] for LeNet's [32,1,32,32]);
- ops with a layout attribute (``TO_NHWC``) run NHWC: their 4-D activation inputs and outputs
  are NHWC and their ``format``/``data_format`` attribute says so;
- a convolution weight that is a parameter is stored KHWC ([O,kh,kw,C/g], format KHWC) in place,
  and a ``<weight>_post_perm`` Transpose back to OIHW is left behind with nothing reading it
  (in the real converter it fed the Loads packed for UpdateState, which are then removed);
  optimizer state of that weight keeps its OIHW shape (the updates are element-wise);
- layout-agnostic ops (activations, their grads, same-shape arithmetic) follow their input;
- the real converter's other dynamic-format ops (Concat, Split/SplitWithSize, Pad, Slice, and
  element-wise ops whose constants broadcast) run NHWC when their neighbours lean NHWC, with
  the axis attribute permuted instead of the input transposed (``goes_nhwc``; the real
  DecreaseTransposeAlgo, transpose_strategy.cc). ReduceMean, Softmax, Tile are not among them;
- where an NHWC value reaches an op that needs NCHW (Flatten, Reshape, ...), a Transpose
  ``<producer>_post`` (perm 0,3,1,2) is inserted after the producer and *every* reader of the
  value reads it; an NHWC op reading an NCHW value gets ``<node>_pre_<k>`` (perm 0,2,3,1) on its
  input k. (That is why LeNet's second MaxPoolGrad reads its pooled input through
  ``..._pre_1`` of ``MaxPool-op1_post``: the real pass inserts the post transpose for all users.)
The perm of each inserted Transpose is written as a constant named ``<transpose>_perm``
(``PERM_NAMES``, read by the .ms writer).
"""

from __future__ import annotations

import numpy as np

from todkit.formats.ms.write import CONST_INPUT_NAMES as PERM_NAMES
from todkit.ir.graph import Graph, Node, TensorType, Value
from todkit.opset import emit, get_op

TO_NCHW, TO_NHWC_PERM = (0, 3, 1, 2), (0, 2, 3, 1)

# op -> (its layout attribute, the input index holding a convolution weight or None)
TO_NHWC = {
    "Conv2D": ("format", 1), "Conv2DBackpropInput": ("format", 1),
    "Conv2DBackpropFilter": ("format", None),
    "MaxPool": ("format", None), "MaxPoolGrad": ("format", None),
    "AvgPool": ("format", None), "AvgPoolGrad": ("format", None),
    "BatchNorm": ("data_format", None), "BatchNormGrad": ("data_format", None),
    "BiasAdd": ("data_format", None), "BiasAddGrad": ("data_format", None),
    # PReLUFusion is in the real converter's NHWCOpMap (its slope runs along the last axis)
    "PReLU": ("data_format", None),
}
# Outputs laid out like a convolution weight (KHWC), not like an activation.
WEIGHT_SHAPED_OUTPUT = ("Conv2DBackpropFilter",)
ELEMENTWISE = {
    "ReLU", "ReLU6", "Sigmoid", "Tanh", "HSigmoid", "HSwish", "Exp", "Log", "Neg", "Sqrt",
    "Dropout", "ReluGrad", "ReLU6Grad", "SigmoidGrad", "TanhGrad", "HSigmoidGrad",
    "HSwishGrad", "SqrtGrad", "DropoutGrad", "Add", "Sub", "Mul", "RealDiv", "Maximum",
    "Minimum", "AddN", "SiLU", "Softplus",
}
# The real converter's "dynamic format" ops (``DynamicFormatOpList`` in
# tools/optimizer/common/format_utils.cc) that have an axis-like attribute: run NHWC, the
# attribute is permuted instead of the input transposed (transpose_strategy.cc: ChangeCommonOp
# for Concat and Split, whose Lite form is also MindSpore's SplitWithSize; ChangeOpPad;
# ChangeOpSlice). ReduceFusion, Softmax, Tile, Reshape and Flatten are not in that list: the
# real converter reads them through a Transpose back to NCHW, and so does this pass.
AXIS_OPS = {"Concat", "SplitWithSize", "Pad", "Slice"}
# Element-wise ops of that list (AddFusion, SubFusion, MulFusion, DivFusion, Maximum, AddN,
# Activation, ActivationGrad, PowFusion, Cast) that may also flip with broadcast constants.
DYNAMIC_ELEMENTWISE = ELEMENTWISE | {"Pow", "Cast"}
DYNAMIC = AXIS_OPS | DYNAMIC_ELEMENTWISE
NHWC_AXIS = (0, 3, 1, 2)  # NCHW axis -> its NHWC position (the real kNH2NC table)


def _nhwc_shape(shape):
    n, c, h, w = shape
    return (n, h, w, c)


def _permute(v: Value) -> None:
    v.data = np.ascontiguousarray(v.data.transpose(TO_NHWC_PERM))
    v.type = TensorType(v.data.shape, v.type.dtype)


def _follows_layout(node: Node) -> bool:
    """An element-wise op is layout-agnostic when its 4-D inputs all have one shape and the
    rest are single elements (no broadcasting along a layout-dependent axis)."""
    if node.op not in ELEMENTWISE:
        return False
    shapes = {v.type.shape for v in node.inputs if len(v.type.shape) == 4}
    return len(shapes) == 1 and all(len(v.type.shape) == 4 or v.type.size == 1
                                    for v in node.inputs)


def _needs_nchw(node: Node) -> bool:
    return node.op not in TO_NHWC and node.op not in DYNAMIC


def _nhwc_axis(axis: int) -> int:
    return NHWC_AXIS[axis % 4]


def _permuted_attrs(node: Node) -> dict:
    """``node``'s attributes for NHWC inputs (transpose_strategy.cc ChangeOpAxis)."""
    a = dict(node.attrs)
    if node.op == "Concat":
        a["axis"] = _nhwc_axis(int(a["axis"]))
    elif node.op == "SplitWithSize":
        a["dim"] = _nhwc_axis(int(a["dim"]))
    elif node.op == "Pad":  # ChangeOpPad: the channel pair moves last
        flat = [int(x) for x in a["paddings"]]
        pairs = [flat[2 * k: 2 * k + 2] for k in range(4)]
        a["paddings"] = tuple(x for k in TO_NHWC_PERM for x in pairs[k])
    elif node.op == "Slice":  # ChangeOpSlice: begin and size follow the axes
        a["begin"] = tuple(int(a["begin"][k]) for k in TO_NHWC_PERM)
        a["size"] = tuple(int(a["size"][k]) for k in TO_NHWC_PERM)
    return a


class _NhwcPass:
    def __init__(self, graph: Graph, weight_posts: bool):
        self.g = graph
        self.keep_weight_posts = weight_posts
        self.nhwc: set[int] = set()       # ids of 4-D activations held NHWC
        self.post: dict[int, Value] = {}  # id(NHWC value) -> its NCHW Transpose output
        self.post_source: dict[int, Value] = {}  # id(that Transpose output) -> the NHWC value
        self.khwc: set[int] = set()       # ids of weights converted to KHWC
        self.weight_posts: list[Node] = []
        self.names: dict[tuple[str, int], str] = graph.attrs.setdefault(PERM_NAMES, {})

    def transpose(self, x: Value, perm, name: str) -> Value:
        node = emit(self.g, "Transpose", [x], {"perm": perm}, name=name, out_names=[name])
        self.names[(node.name, 1)] = f"{node.name}_perm"
        return node.outputs[0]

    def post_of(self, v: Value) -> Value:
        """``v``'s NCHW copy, made once, right after its producer."""
        if id(v) not in self.post:
            base = v.producer.name if v.producer is not None else v.name
            self.post[id(v)] = self.transpose(v, TO_NCHW, f"{base}_post")
            self.post_source[id(self.post[id(v)])] = v
        return self.post[id(v)]

    def to_khwc(self, w: Value) -> None:
        if id(w) in self.khwc:
            return
        self.khwc.add(id(w))
        oihw = w.type.shape
        _permute(w)
        # the tag the real converter gives it: KHWC in a train model, NHWC for inference
        # (lite-2.0/lenet_tod.ms, lenet_infer.ms)
        w.format = "KHWC" if self.keep_weight_posts else "NHWC"
        # SGD's state must be shaped like its parameter (todkit's SGD shape rule), so it is
        # re-laid out with it; Adam's and ApplyMomentum's keep the MINDIR shape, as in the
        # real lenet_tod.ms (the updates are element-wise over the stored order).
        for u in w.users:
            if u.op == "SGD" and u.inputs[0] is w:
                for x in u.inputs[1:]:
                    if x.is_const and x.type.shape == oihw and id(x) not in self.khwc:
                        self.khwc.add(id(x))
                        _permute(x)
        if self.keep_weight_posts:
            out = self.transpose(w, TO_NCHW, f"{w.name}_post_perm")
            self.weight_posts.append(out.producer)

    def run(self) -> None:
        g = self.g
        original, g.nodes = g.nodes, []
        for v in g.inputs:
            if len(v.type.shape) == 4:
                v.type = TensorType(_nhwc_shape(v.type.shape), v.type.dtype)
                self.nhwc.add(id(v))
                self.redirect_if_needed(v)
        for n in original:
            self.visit(n)
        for k, v in enumerate(g.outputs):
            if id(v) in self.nhwc:
                g.outputs[k] = self.post_of(v)
        # The weights' post-permutations read only parameters: they lead the graph.
        posts = {id(n) for n in self.weight_posts}
        g.nodes = self.weight_posts + [n for n in g.nodes if id(n) not in posts]

    def redirect_if_needed(self, v: Value) -> None:
        """Give ``v`` a post transpose read by all its users if any of them needs NCHW."""
        if any(_needs_nchw(u) for u in v.users):
            users = list(v.users)
            post = self.post_of(v)
            for u in users:
                u.inputs = [post if x is v else x for x in u.inputs]
                post.users.append(u)
            v.users = [post.producer]

    def visit(self, n: Node) -> None:
        spec = TO_NHWC.get(n.op)
        four_d = [k for k, v in enumerate(n.inputs) if len(v.type.shape) == 4]
        if spec is not None and four_d and n.attrs.get(spec[0], "NCHW") == "NCHW":
            attr, weight_at = spec
            for k in four_d:
                v = n.inputs[k]
                if k == weight_at:
                    if v.is_const:
                        self.to_khwc(v)
                    else:
                        self.replace_input(n, k, self.transpose(v, TO_NHWC_PERM,
                                                                f"{n.name}_pre_{k}"))
                elif id(v) not in self.nhwc:
                    self.replace_input(n, k, self.transpose(v, TO_NHWC_PERM, f"{n.name}_pre_{k}"))
            n.attrs[attr] = "NHWC"
            self.reinfer(n, nhwc_outputs=n.op not in WEIGHT_SHAPED_OUTPUT)
        elif four_d and _follows_layout(n) and any(id(n.inputs[k]) in self.nhwc for k in four_d):
            for k in four_d:
                if id(n.inputs[k]) not in self.nhwc:
                    self.replace_input(n, k, self.transpose(n.inputs[k], TO_NHWC_PERM,
                                                            f"{n.name}_pre_{k}"))
            self.reinfer(n, nhwc_outputs=True)
        elif self.goes_nhwc(n):
            self.to_dynamic_nhwc(n)
        else:
            for k in four_d:
                if id(n.inputs[k]) in self.nhwc:
                    self.replace_input(n, k, self.post_of(n.inputs[k]))
            # shapes may still change: element-wise state updates of a KHWC weight
            self.reinfer(n, nhwc_outputs=False)

    def held_nhwc(self, v: Value) -> Value | None:
        """The NHWC value behind ``v``: itself, or the one whose ``_post`` ``v`` is."""
        if id(v) in self.nhwc:
            return v
        return self.post_source.get(id(v))

    def goes_nhwc(self, n: Node) -> bool:
        """Whether a dynamic-format op runs NHWC: its 4-D activations and its readers lean
        NHWC (one Transpose before it rather than one per reader after it). The real
        DecreaseTransposeAlgo flips such an op when more than half of its
        neighbours are layout Transposes (single-op pass), or a connected area of such ops
        whose borders are Transposes (multi-op pass); here the neighbours are counted as they
        stand in the forward walk: NHWC inputs and readers that are NHWC layout ops for,
        NCHW 4-D inputs and readers that need NCHW against, other dynamic ops neutral."""
        if n.op not in DYNAMIC:
            return False
        acts = [v for v in n.inputs if not v.is_const]
        if not acts or any(len(v.type.shape) != 4 and v.type.size != 1 for v in acts):
            return False
        if n.op in AXIS_OPS and len(n.inputs[0].type.shape) != 4:
            return False
        if any(len(o.type.shape) != 4 for o in n.outputs):
            return False
        for v in n.inputs:
            # constants: broadcast operands are re-laid out below; anything else stays out
            if v.is_const and v.type.size != 1 and (
                    n.op in AXIS_OPS or len(v.type.shape) > 4 or v.type.dtype.np.kind != "f"):
                return False
        four = [v for v in acts if len(v.type.shape) == 4]
        held = sum(self.held_nhwc(v) is not None for v in four)
        readers = [u for o in n.outputs for u in o.users]
        pro = held + sum(u.op in TO_NHWC for u in readers)
        con = (len(four) - held) + sum(_needs_nchw(u) for u in readers)
        return pro > con

    def to_dynamic_nhwc(self, n: Node) -> None:
        for k, v in enumerate(list(n.inputs)):
            if v.is_const:
                if v.type.size != 1:
                    self.replace_input(n, k, self.nhwc_const(v))
                continue
            if len(v.type.shape) != 4:
                continue
            src = self.held_nhwc(v)
            if src is None:
                self.replace_input(n, k, self.transpose(v, TO_NHWC_PERM, f"{n.name}_pre_{k}"))
            elif src is not v:  # a Transpose pair cancels (TransposePairFuseWhenInsert)
                self.replace_input(n, k, src)
                self.drop_if_unread(v)
        n.attrs = _permuted_attrs(n)
        self.reinfer(n, nhwc_outputs=True)

    def nhwc_const(self, c: Value) -> Value:
        """A broadcast constant for an NHWC element-wise op: shape padded with leading 1s to
        4-D, then permuted as a KCHW->KHWC filter (ConvertTensorToNCOrNH; all-ones shapes
        and non-float data are left alone)."""
        if all(d == 1 for d in c.type.shape):
            return c
        data = c.data.reshape((1,) * (4 - c.data.ndim) + c.data.shape).transpose(TO_NHWC_PERM)
        if len(c.users) == 1 and not c.param:
            c.data = np.ascontiguousarray(data)
            c.type = TensorType(c.data.shape, c.type.dtype)
            return c
        return self.g.add_const(c.name, np.ascontiguousarray(data), unique=True)

    def drop_if_unread(self, post: Value) -> None:
        if post.users or post in self.g.outputs:
            return
        node = post.producer
        del self.post[id(node.inputs[0])]
        del self.post_source[id(post)]
        self.g.remove_nodes([node])
        self.names.pop((node.name, 1), None)

    def replace_input(self, n: Node, k: int, new: Value) -> None:
        old = n.inputs[k]
        n.inputs[k] = new
        if n not in new.users:
            new.users.append(n)
        if all(x is not old for x in n.inputs):
            old.users = [u for u in old.users if u is not n]

    def reinfer(self, n: Node, nhwc_outputs: bool) -> None:
        types = get_op(n.op).infer_types([v.type for v in n.inputs], n.attrs, where=n.name)
        for v, t in zip(n.outputs, types):
            v.type = t
        self.g.nodes.append(n)
        for v in n.outputs:
            if nhwc_outputs and len(v.type.shape) == 4:
                self.nhwc.add(id(v))
                self.redirect_if_needed(v)


def to_nhwc(graph: Graph, weight_posts: bool = True) -> None:
    """Convert ``graph`` in place as the real converter does (module docstring).

    ``weight_posts=False`` for inference: there the converter removes the Load/UpdateState
    plumbing right after import, so no ``<weight>_post_perm`` is left (lite-2.0/lenet_infer.ms).
    """
    if any(len(v.type.shape) == 4 for v in graph.values()):
        _NhwcPass(graph, weight_posts).run()
