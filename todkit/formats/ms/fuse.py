"""The fused ``Conv2DFusion`` / ``MatMulFusion`` forms MindSpore Lite writes for inference.

The IR keeps one op per node (the reader splits a fused node into the op, a ``BiasAdd`` and an
activation); the writer joins a chain back into one node when told to (``write(...,
fusions=...)``). Which chains to join is the caller's decision: the converter's inference
conversion (not for train-marked nodes) and the runtime's inference export.

A chain is what the real fusion passes match (``conv_biasadd_fusion``, ``matmul_add_fusion``,
then ``conv_activation_fusion``, ``matmul_activation_fusion``): a ``Conv2D`` or ``MatMul``,
then optionally a ``BiasAdd`` of a constant bias, then optionally a ``ReLU`` / ``ReLU6`` (the
two activation types those passes take), where every intermediate value has that one reader
and is not a graph output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from todkit.formats.ms import optable
from todkit.ir.graph import Graph, Node, Value

HEADS = ("Conv2D", "MatMul")
FUSED_ACTIVATIONS = {op: code for code, op in optable.ACTIVATION_OPS.items()
                     if op in ("ReLU", "ReLU6")}


@dataclass(frozen=True)
class Fusion:
    head: Node              # Conv2D or MatMul
    bias: Node | None       # BiasAdd whose constant bias becomes the head's third input
    activation: Node | None  # ReLU / ReLU6, written as the head's activation_type

    @property
    def nodes(self) -> list[Node]:
        return [n for n in (self.head, self.bias, self.activation) if n is not None]

    @property
    def output(self) -> Value:
        return self.nodes[-1].outputs[0]


def _only_reader(graph: Graph, v: Value) -> Node | None:
    if v in graph.outputs or len(v.users) != 1:
        return None
    return v.users[0]


def find_fusions(graph: Graph, can_fuse: Callable[[Node], bool] = lambda n: True
                 ) -> list[Fusion]:
    """The chains of ``graph`` to write fused; a node for which ``can_fuse`` is False is left
    alone (the converter's train marks)."""
    found = []
    for head in graph.nodes:
        if head.op not in HEADS or not can_fuse(head) or len(head.outputs) != 1:
            continue
        bias = act = None
        nxt = _only_reader(graph, head.outputs[0])
        if nxt is not None and nxt.op == "BiasAdd" and can_fuse(nxt) \
                and nxt.inputs[0] is head.outputs[0] and nxt.inputs[1].is_const:
            bias = nxt
            nxt = _only_reader(graph, bias.outputs[0])
        if nxt is not None and nxt.op in FUSED_ACTIVATIONS and can_fuse(nxt):
            act = nxt
        if bias is not None or act is not None:
            found.append(Fusion(head, bias, act))
    return found
