"""Which nodes are the loss, the gradients, the optimizers; what the eval outputs are.

Found by name and op type exactly as MindSpore Lite's TrainSession does
(src/train/train_session.cc; reference/converter.md section 5), because a .ms file carries no
other marking: the loss keeps its MINDIR scope name (``.../_loss_fn-.../...``), backward
nodes live under ``Gradients/``, and optimizers are recognised by their op.
"""

from __future__ import annotations

from dataclasses import dataclass

from todkit.ir.graph import Graph, Node, Value

DEFAULT_LOSS_NAMES = ("loss_fct", "_loss_fn", "SigmoidCrossEntropy")

# Optimizer op -> index of its learning-rate input (reference/formats.md section 2).
LR_INPUT_INDEX = {"Adam": 5, "SGD": 2, "ApplyMomentum": 2}
# Optimizer op -> index of its gradient input.
GRAD_INPUT_INDEX = {"Adam": 9, "SGD": 1, "ApplyMomentum": 3}
# Optimizer op -> inputs Lite calls trainable (GetTrainableParamsIdxs) and the scalar
# hyper-parameters it exposes (GetOptimizerParams, plus the lr).
TRAINABLE_INPUTS = {"Adam": (0, 1, 2, 3, 4, 5), "SGD": (0, 2, 3, 4, 5),
                    "ApplyMomentum": (0, 1, 2, 4)}
OPTIMIZER_PARAM_INPUTS = {"Adam": (6, 7, 3, 4, 8, 5), "SGD": (4, 2), "ApplyMomentum": (4, 2)}
# Ops whose outputs are never model outputs (Lite's IsMaskOutput).
MASK_OUTPUT_OPS = frozenset(LR_INPUT_INDEX) | {"Assign"}


def is_grad_node(node: Node) -> bool:
    return "Gradients" in node.name


def is_loss_node(node: Node, loss_names) -> bool:
    return any(p in node.name for p in loss_names)


def is_optimizer(node: Node) -> bool:
    return node.op in LR_INPUT_INDEX


@dataclass
class GraphRoles:
    inputs: list[Value]  # graph inputs, file order
    train_nodes: list[Node]  # every node, execution order
    inference_nodes: list[Node]  # what eval mode runs
    loss_nodes: list[Node]  # loss kernels that are not gradients
    optimizers: list[Node]
    train_outputs: list[Value]  # the loss
    eval_outputs: list[Value]  # the logits
    is_inference_model: bool

    @property
    def inference_inputs(self) -> list[Value]:
        """Graph inputs that the inference nodes read (the data, not the label)."""
        read = {id(v) for n in self.inference_nodes for v in n.inputs}
        return [v for v in self.inputs if id(v) in read]


def find_roles(graph: Graph, loss_names=DEFAULT_LOSS_NAMES) -> GraphRoles:
    nodes = list(graph.nodes)
    loss_names = tuple(loss_names)

    def is_loss(n: Node | None) -> bool:
        return n is not None and is_loss_node(n, loss_names)

    optimizers = [n for n in nodes if is_optimizer(n)]
    train_outputs = [v for v in graph.outputs
                     if v.producer is None or v.producer.op not in MASK_OUTPUT_OPS]

    # Eval outputs: for each forward loss node, what its non-loss, non-gradient producers feed
    # it. Lite also skips a producer that itself reads a loss node (a loss made of several
    # nodes, e.g. SoftmaxCrossEntropy then ReduceMean). Lite takes the producer's output 0;
    # we take the value the loss actually reads, which is the same for one-output producers.
    loss_nodes = [n for n in nodes if is_loss(n) and not is_grad_node(n)]
    eval_outputs: list[Value] = []
    for loss in loss_nodes:
        for v in loss.inputs:
            p = v.producer
            if p is None or is_loss(p) or is_grad_node(p):
                continue
            if any(is_loss(u.producer) for u in p.inputs):
                continue
            if all(v is not e for e in eval_outputs):
                eval_outputs.append(v)

    if eval_outputs:
        # Recursive predecessors of the eval-output producers, minus loss nodes.
        keep: set[int] = set()
        stack = [v.producer for v in eval_outputs]
        while stack:
            n = stack.pop()
            if id(n) in keep or is_loss(n):
                continue
            keep.add(id(n))
            stack.extend(v.producer for v in n.inputs if v.producer is not None)
        inference = [n for n in nodes if id(n) in keep]
    else:
        inference = nodes
        eval_outputs = list(graph.outputs)
    return GraphRoles(list(graph.inputs), nodes, inference, loss_nodes, optimizers,
                      train_outputs, eval_outputs, is_inference_model=len(inference) == len(nodes))
