"""Which nodes the converter writes fused (``todkit.formats.ms.fuse``): MindSpore Lite's
fusion passes skip nodes ``AnfTransform::MarkTrainOp`` marked ``trainOp``
(reference/converter.md section 3), so a train graph keeps its Conv2D/MatMul, BiasAdd and
activations apart (lite-2.0/lenet_tod.ms) while an inference graph, converted with or without
``--trainModel``, is fused (lite-2.0/lenet_infer.ms).
"""

from __future__ import annotations

from todkit.formats.ms.fuse import Fusion, find_fusions
from todkit.ir.graph import Graph, Node

OPTIMIZERS = ("Adam", "SGD", "ApplyMomentum")
LOSSES = ("SoftmaxCrossEntropyWithLogits", "SparseSoftmaxCrossEntropyWithLogits",
          "SmoothL1Loss", "SmoothL1LossGrad", "SigmoidCrossEntropyWithLogits",
          "SigmoidCrossEntropyWithLogitsGrad")


def is_train_op(n: Node) -> bool:
    return n.op in OPTIMIZERS or n.op in LOSSES or "Grad" in n.op or "Gradients" in n.name


def mark_train_ops(graph: Graph) -> set[int]:
    """ids of the nodes MarkTrainOp marks: the train ops, their direct producers, and every
    node that reads a parameter a train op reads."""
    marked: set[int] = set()
    for t in graph.nodes:
        if not is_train_op(t):
            continue
        marked.add(id(t))
        for v in t.inputs:
            if v.producer is not None:
                marked.add(id(v.producer))
            if v.param:
                marked.update(id(u) for u in v.users)
    return marked


def converter_fusions(graph: Graph) -> list[Fusion]:
    marked = mark_train_ops(graph)
    return find_fusions(graph, lambda n: id(n) not in marked)
