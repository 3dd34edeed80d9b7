"""Hand-built IR graphs for the runtime tests, laid out like the converter's train .ms files
(/work/shared/corpus/lite-2.0/tiny_*_train.ms.json): Dense(4, 3) + sparse softmax cross
entropy (+ its is_grad twin under Gradients/) + one optimizer node per parameter."""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit

NET = "Default/network-WithLossCell/_backbone-Tiny/fc-Dense"
LOSS = "Default/network-WithLossCell/_loss_fn-SoftmaxCrossEntropyWithLogits"
GRAD = "Gradients/Default/network-WithLossCell"
OPT = "Default/optimizer-{}"
BATCH, IN, OUT = 2, 4, 3


def f32(x):
    return np.asarray(x, dtype=np.float32)


def dense_forward(g: Graph, seed: int):
    rng = np.random.default_rng(seed)
    x = g.add_input("inputs0", TensorType((BATCH, IN), dtypes.float32))
    w = g.add_const("fc.weight", f32(rng.normal(0, 0.5, (OUT, IN))), param=True)
    b = g.add_const("fc.bias", f32(rng.normal(0, 0.1, (OUT,))), param=True)
    mm = emit(g, "MatMul", [x, w], {"transpose_b": True}, name=f"{NET}/MatMul-op0").outputs[0]
    logits = emit(g, "BiasAdd", [mm, b], name=f"{NET}/BiasAdd-op0").outputs[0]
    return x, w, b, logits


def inference_graph(seed: int = 0) -> Graph:
    g = Graph("tiny_infer")
    *_, logits = dense_forward(g, seed)
    g.outputs = [logits]
    return g


def sparse_ce(g: Graph, logits, label):
    """The loss and its gradient, as MindSpore's WithLossCell / GradOperation name them."""
    loss = emit(g, "SparseSoftmaxCrossEntropyWithLogits", [logits, label],
                name=f"{LOSS}/SparseSoftmaxCrossEntropyWithLogits-op0").outputs[0]
    dlogits = emit(g, "SparseSoftmaxCrossEntropyWithLogits", [logits, label], {"is_grad": True},
                   name=f"{GRAD}/_loss_fn-SoftmaxCrossEntropyWithLogits/Grad_SparseSoftmax"
                        "CrossEntropyWithLogits/SparseSoftmaxCrossEntropyWithLogits-op0"
                   ).outputs[0]
    return loss, dlogits


CNN = "Default/network-WithLossCell/_backbone-Net"  # the small convolutional test nets


def batch_norm(g: Graph, x, name: str, c: int, rng, training: bool = True):
    """An NHWC BatchNorm ``{name}`` in train mode with random statistics (``training``: its
    gamma, beta and statistics are parameters)."""
    vec = [f32(rng.uniform(0.5, 1.5, c)), f32(rng.normal(0, 0.5, c)),
           f32(rng.normal(0, 0.1, c)), f32(rng.uniform(0.5, 1.5, c))]
    params = [g.add_const(f"{name}.{n}", v, param=training) for n, v in zip(
        ("gamma", "beta", "moving_mean", "moving_variance"), vec)]
    return emit(g, "BatchNorm", [x, *params],
                {"is_training": training, "momentum": 0.1, "data_format": "NHWC"},
                name=f"{CNN}/{name}-BatchNorm2d/BatchNorm-op0").outputs[0]


def mean_dense_head(g: Graph, feat, c: int, n: int, classes: int, rng,
                    optimizer: str = "sgd") -> None:
    """Global mean -> Dense(c, classes) -> sparse CE on an ``inputs1`` label, the Dense
    trained by plain SGD or ApplyMomentum; the loss is the graph's output."""
    pooled = emit(g, "ReduceMean", [feat], {"axis": (1, 2)},
                  name=f"{CNN}/ReduceMean-op0").outputs[0]
    w = g.add_const("fc.weight", f32(rng.normal(0, 0.5, (classes, c))), param=True)
    logits = emit(g, "MatMul", [pooled, w], {"transpose_b": True},
                  name=f"{CNN}/fc-Dense/MatMul-op0").outputs[0]
    label = g.add_input("inputs1", TensorType((n,), dtypes.int32))
    loss, dlogits = sparse_ce(g, logits, label)
    dw = emit(g, "MatMul", [dlogits, pooled], {"transpose_a": True},
              name=f"{GRAD}/_backbone-Net/fc-Dense/Grad_MatMul/MatMul-op0").outputs[0]
    lr = g.add_const("learning_rate", f32(0.1), param=True)
    if optimizer == "momentum":
        mom = g.add_const("momentum", f32(0.9), param=True)
        acc = g.add_const("moments.fc.weight", np.zeros_like(w.data), param=True)
        emit(g, "ApplyMomentum", [w, acc, lr, dw, mom],
             name=f"{OPT.format('Momentum')}/AM-op0")
    else:
        mom = g.add_const("momentum", f32(0.0), param=True)
        acc = g.add_const("accum.fc.weight", np.zeros_like(w.data), param=True)
        stat = g.add_const("stat.fc.weight", np.ones_like(w.data), param=True)
        emit(g, "SGD", [w, dw, lr, acc, mom, stat], name=f"{OPT.format('SGD')}/SGD-op0")
    g.outputs = [loss]


def train_graph(optimizer: str = "adam", seed: int = 0, lr: float | None = None) -> Graph:
    g = Graph(f"tiny_{optimizer}_train")
    x, w, b, logits = dense_forward(g, seed)
    label = g.add_input("inputs1", TensorType((BATCH,), dtypes.int32))
    loss, dlogits = sparse_ce(g, logits, label)
    dw = emit(g, "MatMul", [dlogits, x], {"transpose_a": True},
              name=f"{GRAD}/_backbone-Tiny/fc-Dense/Grad_MatMul/MatMul-op0").outputs[0]
    db = emit(g, "BiasAddGrad", [dlogits],
              name=f"{GRAD}/_backbone-Tiny/fc-Dense/Grad_BiasAdd/BiasAddGrad-op0").outputs[0]
    params = [(w, dw), (b, db)]
    if optimizer == "adam":
        _adam(g, params, 0.003 if lr is None else lr)
    elif optimizer == "momentum":
        scope = OPT.format("Momentum")
        lr_v = g.add_const("learning_rate", f32(0.01 if lr is None else lr), param=True)
        mom = g.add_const("momentum", f32(0.9), param=True)
        for k, (p, grad) in enumerate(params):
            acc = g.add_const(f"moments.{p.name}", np.zeros_like(p.data), param=True)
            emit(g, "ApplyMomentum", [p, acc, lr_v, grad, mom], name=f"{scope}/ApplyMomentum-op{k}")
    elif optimizer == "sgd":
        scope = OPT.format("SGD")
        lr_v = g.add_const("learning_rate", f32(0.01 if lr is None else lr), param=True)
        mom = g.add_const("momentum", f32(0.0), param=True)
        for k, (p, grad) in enumerate(params):
            acc = g.add_const(f"accum.{p.name}", np.zeros_like(p.data), param=True)
            stat = g.add_const(f"stat.{p.name}", np.ones_like(p.data), param=True)
            emit(g, "SGD", [p, grad, lr_v, acc, mom, stat], name=f"{scope}/SGD-op{k}")
    else:
        raise ValueError(optimizer)
    g.outputs = [loss]
    return g


def _adam(g: Graph, params, lr: float) -> None:
    """As nn.Adam(weight_decay=4e-5) converts: the beta powers advance by Mul + Assign before
    the forward pass, weight decay is Mul + AddN, then one Adam node per parameter."""
    scope = OPT.format("Adam")
    b1p = g.add_const("beta1_power", f32([1.0]), param=True)
    b2p = g.add_const("beta2_power", f32([1.0]), param=True)
    lr_v = g.add_const("learning_rate", f32(lr), param=True)
    beta1 = g.add_const("Default/data-0", f32([0.9]))
    beta2 = g.add_const("Default/data-1", f32([0.999]))
    eps = g.add_const("Default/data-2", f32([1e-5]))
    wd = g.add_const("Default/data-3", f32([4e-5]))
    b2p_new = emit(g, "Mul", [b2p, beta2], name=f"{scope}/Mul-op1").outputs[0]
    b1p_new = emit(g, "Mul", [b1p, beta1], name=f"{scope}/Mul-op0").outputs[0]
    emit(g, "Assign", [b1p, b1p_new], name=f"{scope}/Assign-op0")
    emit(g, "Assign", [b2p, b2p_new], name=f"{scope}/Assign-op1")
    # Move the power updates to the front, as in the converted file.
    g.nodes = g.nodes[-4:] + g.nodes[:-4]
    for k, (p, grad) in enumerate(params):
        m = g.add_const(f"moment1.{p.name}", np.zeros_like(p.data), param=True)
        v = g.add_const(f"moment2.{p.name}", np.zeros_like(p.data), param=True)
        decay = emit(g, "Mul", [p, wd], name=f"{scope}/Mul-op{k + 2}").outputs[0]
        gsum = emit(g, "AddN", [decay, grad], name=f"{scope}/AddN-op{k}").outputs[0]
        emit(g, "Adam", [p, m, v, b1p_new, b2p_new, lr_v, beta1, beta2, eps, gsum],
             name=f"{scope}/Adam-op{k}")


def batches(n: int, seed: int = 1):
    rng = np.random.default_rng(seed)
    return [(f32(rng.normal(size=(BATCH, IN))), rng.integers(0, OUT, BATCH).astype(np.int32))
            for _ in range(n)]
