"""MindSpore ops Lite has no kernel for, written with ops it has (the last rewrite before the
``.ms`` writer).

MindSpore 2.10 exports nn.PReLU's gradient as ``PReLUGrad(dy, x, w) -> (dx, dw)`` and
nn.Dropout2d as ``Dropout2D(x) -> (y, mask)``. MindSpore Lite has neither: no PReLU gradient
among its fp32_grad kernels, no Dropout2D in its schema (the real converter fails on both).
The IR keeps them as MindSpore's ops, so the MINDIR reader and writer, the front end and the
reference interpreter see MindSpore's graph; here each is replaced, in its place in the node
order, by the ops of ``opset/more_activations.py``:

- PReLUGrad: Greater / Select / Mul / ReduceSum / Reshape (``prelu_grad_for_lite``);
- Dropout2D: Lite's Dropout over a constant of ones [N, C, 1, 1], a broadcasting Mul, and for
  the mask (when something reads it) Tile + Cast to bool (``dropout2d_for_lite``).

The pass runs after the NHWC conversion, which gives both ops NCHW inputs (neither is a layout
op of the real converter), so the spellings are laid out NCHW. In an inference conversion
Dropout2D is the identity and is removed, as the converter removes Dropout.

Before the layout pass (``passes.spell_grads_for_lite``), two more gradient forms: 2.10's L1
gradient Mul(dout, Sign(x)) becomes Lite's AbsGrad, and GroupNormGrad (no Lite kernel) is
written with Reshape / ReduceMean / ReduceSum / Sub / Mul / Add / Sqrt / RealDiv.

It also refuses, naming the node, the forms of ops Lite has whose kernel would compute
something else (``CHECKS``): PReLU with per-channel slopes on an input other than 2-D or NHWC
4-D.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from todkit.core.errors import NotSupportedError
from todkit.ir.graph import Graph, Node, Value
from todkit.opset import emit
from todkit.opset.more_activations import dropout2d_for_lite, prelu_grad_for_lite


def _read(graph: Graph, v: Value) -> bool:
    return bool(v.users) or any(o is v for o in graph.outputs)


def _makers(graph: Graph, node: Node):
    """(make, const) naming what they add ``<node>/<suffix>``."""
    def make(op, inputs, suffix, **attrs):
        return emit(graph, op, inputs, attrs, name=f"{node.name}/{suffix}").outputs[0]

    def const(data, suffix):
        return graph.add_const(f"{node.name}/{suffix}", np.asarray(data), unique=True)
    return make, const


def _prelu_grad(graph: Graph, node: Node, train: bool) -> list[Value | None]:
    dy, x, w = node.inputs
    make, const = _makers(graph, node)
    want = [_read(graph, v) for v in node.outputs]
    return list(prelu_grad_for_lite(make, const, dy, x, w, node.attrs["data_format"],
                                    want_dx=want[0], want_dw=want[1]))


def _dropout2d(graph: Graph, node: Node, train: bool) -> list[Value | None]:
    (x,) = node.inputs
    with_mask = _read(graph, node.outputs[1])
    if not train and not with_mask:
        return [x, None]  # inference: the identity, as Dropout is removed
    if len(x.type.shape) != 4:
        raise NotSupportedError(f"node {node.name!r}: Dropout2D of a {len(x.type.shape)}-D "
                                "input; only NCHW 4-D inputs are supported")
    make, const = _makers(graph, node)
    return list(dropout2d_for_lite(make, const, x, float(node.attrs["keep_prob"]), with_mask))


# op -> spell(graph, node, train) -> a replacement for each output (None: nothing reads it)
SPELLINGS: dict[str, Callable[[Graph, Node, bool], list[Value | None]]] = {
    "PReLUGrad": _prelu_grad,
    "Dropout2D": _dropout2d,
}


def _check_prelu(node: Node) -> None:
    """nnacl's PRelu applies a per-channel slope along the innermost axis and finds the channel
    count of 2-D and 4-D inputs only (GetChannel); the NHWC pass made 4-D ones NHWC."""
    x, w = node.inputs
    rank = len(x.type.shape)
    if w.type.size == 1 or rank == 2 or (rank == 4 and node.attrs["data_format"] == "NHWC"):
        return
    raise NotSupportedError(f"node {node.name!r} (PReLU): {w.type.size} slopes on a {rank}-D "
                            "input have no Lite form (Lite's PReLU kernel takes one slope, or "
                            "one per channel of a 2-D or 4-D input)")


# ops written as they are, in the forms Lite's kernels take: op -> check(node)
CHECKS: dict[str, Callable[[Node], None]] = {"PReLU": _check_prelu}


def spell_for_lite(graph: Graph, train: bool = True) -> None:
    """Refuse the ``CHECKS`` forms Lite cannot run, then replace every ``SPELLINGS`` node by
    its Lite spelling, at its place in the order."""
    for node in graph.nodes:
        check = CHECKS.get(node.op)
        if check is not None:
            check(node)
    if not any(n.op in SPELLINGS for n in graph.nodes):
        return
    order: list[Node] = []
    dead: list[Node] = []
    for node in list(graph.nodes):
        spell = SPELLINGS.get(node.op)
        if spell is None:
            order.append(node)
            continue
        mark = len(graph.nodes)
        news = spell(graph, node, train)
        order.extend(graph.nodes[mark:])  # emit appended them: they go where the node was
        del graph.nodes[mark:]
        for old, new in zip(node.outputs, news):
            if new is not None:
                graph.replace_uses(old, new)
            elif _read(graph, old):
                raise NotSupportedError(f"node {node.name!r} ({node.op}): output "
                                        f"{old.name!r} is read but has no Lite spelling")
        order.append(node)
        dead.append(node)
    graph.nodes = order
    graph.remove_nodes(dead)


# -- before the layout pass: gradient forms Lite lacks, written in MindSpore's NCHW --------
def sign_products_as_abs_grad(graph: Graph) -> None:
    """MindSpore 2.10 exports L1Loss's gradient as Mul(dout, Sign(x)); Lite has no Sign kernel
    but AbsGrad(x, dout) = dout * sign(x), the same products. Each such pair (Sign read only
    by that Mul, operands of one shape) becomes one AbsGrad node in the Mul's place."""
    dead = []
    for sign in graph.nodes:
        if sign.op != "Sign":
            continue
        y = sign.outputs[0]
        if len(y.users) != 1 or y in graph.outputs or y.users[0].op != "Mul":
            continue
        mul = y.users[0]
        other = mul.inputs[1] if mul.inputs[0] is y else mul.inputs[0]
        x = sign.inputs[0]
        if other is y or other.type != y.type or mul.outputs[0].type != y.type:
            continue
        mul.op, mul.attrs, mul.inputs = "AbsGrad", {}, [x, other]
        x.users.append(mul)
        y.users = []
        dead.append(sign)
    graph.remove_nodes(dead)


def group_norm_grads_with_lite_ops(graph: Graph) -> None:
    """MindSpore Lite has no GroupNormGrad kernel, and its GroupNormFusion does not output the
    mean and rstd that MindSpore's GroupNormGrad reads. Each GroupNormGrad is written with ops
    Lite has (``opset.group_norm.group_norm_grad_ops``: Reshape, ReduceMean, ReduceSum, Sub,
    Mul, Add, Sqrt, RealDiv), in its place and named under it (so they stay gradient nodes);
    when its statistics are outputs 1 and 2 of a GroupNorm of the same x and groups, they are
    recomputed from x with that GroupNorm's epsilon, else the given ones are used."""
    from todkit.opset.group_norm import group_norm_grad_ops

    for gng in [n for n in graph.nodes if n.op == "GroupNormGrad"]:
        dy, x, mean, rstd, gamma = gng.inputs
        groups = int(gng.attrs["num_groups"])
        fwd = mean.producer
        own_stats = fwd is not None and fwd.op == "GroupNorm" and rstd.producer is fwd \
            and mean.index == 1 and rstd.index == 2 and fwd.inputs[0] is x \
            and int(fwd.attrs["num_groups"]) == groups
        at = graph.nodes.index(gng)
        before = len(graph.nodes)

        def make(op, inputs, suffix, gng=gng, **attrs):
            return emit(graph, op, inputs, attrs, name=f"{gng.name}/{suffix}").outputs[0]

        def const(data, suffix, gng=gng):
            return graph.add_const(f"{gng.name}/{suffix}", np.asarray(data), unique=True)

        want = [bool(o.users) or o in graph.outputs for o in gng.outputs]
        new = group_norm_grad_ops(
            make, const, dy, x, gamma, groups, stats=None if own_stats else (mean, rstd),
            epsilon=float(fwd.attrs["epsilon"]) if own_stats else None, want=want)
        for old, value in zip(gng.outputs, new):
            if value is not None:
                graph.replace_uses(old, value)
        made = graph.nodes[before:]
        del graph.nodes[before:]
        graph.nodes[at:at] = made
        graph.remove_nodes([gng])
