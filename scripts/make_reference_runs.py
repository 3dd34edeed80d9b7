"""Record reference training runs with real MindSpore 2.10 (tests/test_reference_runs.py uses them).

Run it with MindSpore's own interpreter, never the project's .venv (MindSpore is not a todkit
dependency):

    python3 -m venv /work/venvs/ms && /work/venvs/ms/bin/pip install mindspore==2.10.0
    /work/venvs/ms/bin/python scripts/make_reference_runs.py [--out DIR] [NAME ...]

(default DIR: tests/fixtures/reference; default: every run).

For every net below it builds the net in GRAPH_MODE on CPU with fixed seeds, wraps it in
WithLossCell + optimizer + TrainOneStepCell (set_train(True), as MindSpore's ToD recipe does),
exports the train graph with ``mindspore.export(..., file_format='MINDIR')`` and records, in
``<out>/<name>/``:

- ``train.mindir``          the exported train graph (its parameters hold the initial state);
- ``ref_x.npy``/``ref_y.npy`` fixed batches, stacked on axis 0; step i uses batch i % n;
- ``init_train_state.npz``  every parameter of the TrainOneStepCell before training, by its
                            MindSpore name (weights, BN moving statistics, optimizer slots,
                            learning_rate, momentum, beta powers, global_step);
- ``init_logits_b0.npy``    the net's outputs on batch 0 before training, in eval mode
                            (``set_train(False)``: BatchNorm uses its moving statistics);
- ``init_grads.npz``        the step-0 gradients on batch 0 of every parameter in the optimizer,
                            as the optimizer op receives them (``ops.GradOperation`` on the loss
                            net with sens = ones, then ``Optimizer.decay_weight``, which adds
                            ``weight_decay * param`` when weight_decay > 0);
- ``run.json``              what was run and ``loss``: the value TrainOneStepCell returned at
                            each step (a scalar, or the per-sample vector for reduction 'none');
- ``final_train_state.npz`` every parameter after the last step.

The gradient and eval computations run before training; any state they touch (BatchNorm's
moving statistics) is restored from the snapshot before the first train step, so the run
starts from exactly the parameters stored in train.mindir (the tests check that too).
Reruns give identical npz/npy/json files (the .mindir names carry MindSpore's global counters).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

try:
    import mindspore as ms
    from mindspore import ParameterTuple, Tensor, nn, ops
except ImportError:  # pragma: no cover - this script runs only in MindSpore's venv
    sys.exit("make_reference_runs.py needs MindSpore 2.10: run it with /work/venvs/ms/bin/python")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "reference"
BATCH = 8
N_BATCHES = 4


# -- nets ----------------------------------------------------------------------------------
class MLP(nn.Cell):
    """The corpus MLP (mlp_digits): Dense(64,32) + ReLU + Dense(32,10)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(64, 32)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(32, 10)

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


class SmallCNN(nn.Cell):
    """Conv(valid, stride 2, bias) + ReLU + Conv(same, stride 2: asymmetric padding) + ReLU
    + MaxPool(2, 2) + Flatten + Dense. Input 3x17x17 -> 4x8x8 -> 6x4x4 -> 6x2x2 -> 5."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, stride=2, pad_mode="valid", has_bias=True)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, pad_mode="same")
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(24, 5)

    def construct(self, x):
        x = self.relu(self.conv1(x))
        x = self.relu(self.conv2(x))
        return self.fc(self.flatten(self.pool(x)))


class BNNet(nn.Cell):
    """Conv(same) + BatchNorm2d (training mode) + ReLU + MaxPool + Flatten + Dense."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 4 * 4, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.bn(self.conv(x))))))


class Backbone(nn.Cell):
    """A tiny frozen feature extractor like resnet_tl_head's: Conv + BN + ReLU, twice, and a
    global average pool (ReduceMean over H, W)."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.bn1 = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 6, 3, stride=2, pad_mode="same")
        self.bn2 = nn.BatchNorm2d(6)
        self.relu = nn.ReLU()
        self.mean = ops.ReduceMean(keep_dims=False)

    def construct(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.relu(self.bn2(self.conv2(x)))
        return self.mean(x, (2, 3))


class TransferNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.backbone = Backbone()
        self.head = nn.Dense(6, 5)

    def construct(self, x):
        return self.head(self.backbone(x))


class DepthwiseNet(nn.Cell):
    """Conv + depthwise Conv (group = channels) + ReLU + AvgPool + Dropout(keep_prob 1) + Dense."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="valid")
        self.dw = nn.Conv2d(4, 4, 3, pad_mode="same", group=4)
        self.relu = nn.ReLU()
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        self.dropout = ops.Dropout(keep_prob=1.0)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 3 * 3, 5)

    def construct(self, x):
        x = self.relu(self.dw(self.relu(self.conv(x))))
        x, _ = self.dropout(self.pool(x))
        return self.fc(self.flatten(x))


class ActMLP(nn.Cell):
    """Dense(16,12) + an activation + Dense(12,5): MindSpore 2.10 exports each activation's
    own gradient form (ELU: EluGrad; LeakyReLU: Maximum(x, alpha*x), whose gradient splits
    ties with Select/Greater/Less/Equal/FillV2/Divs)."""

    def __init__(self, act):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.act = act
        self.fc2 = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class LayerNormMLP(nn.Cell):
    """Dense(16,12) + LayerNorm((12,)) + ReLU + Dense(12,5)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.norm = nn.LayerNorm((12,))
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc2(self.relu(self.norm(self.fc1(x))))


class GatedLogSoftmax(nn.Cell):
    """Dense(16,12) -> h * Softmax(h) -> Dense(12,5) -> LogSoftmax: 2.10 exports SoftmaxBackward
    and LogSoftmaxGrad (its nn.NLLLoss is a GatherD / MaskedFill composite todkit lacks)."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.softmax = nn.Softmax()
        self.fc2 = nn.Dense(12, 5)
        self.log_softmax = nn.LogSoftmax()

    def construct(self, x):
        h = self.fc1(x)
        return self.log_softmax(self.fc2(h * self.softmax(h)))


class TilePowLog(nn.Cell):
    """Dense(16,6) -> Tile (1,2) -> Pow 2.0 -> Log(1 + .) -> Dense(12,5): 2.10 exports SumExt,
    Pow's Select / GreaterEqual / LogicalAnd guards with SubScalar, and Div."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 6)
        self.fc2 = nn.Dense(12, 5)
        self.two = Tensor(np.array(2.0, np.float32))
        self.one = Tensor(np.array(1.0, np.float32))

    def construct(self, x):
        t = ops.tile(self.fc1(x), (1, 2))
        return self.fc2(ops.log(ops.pow(t, self.two) + self.one))


class TransposedConvNet(nn.Cell):
    """Conv(same) + ReLU + Conv2dTranspose(stride 2, bias) + ReLU + Flatten + Dense: 2.10
    exports Conv2DTranspose, its input gradient as Conv2D and its weight gradient as
    Conv2DBackpropFilter(x, dout)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.up = nn.Conv2dTranspose(4, 4, 2, stride=2, has_bias=True)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 16 * 16, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.relu(self.up(self.relu(self.conv(x))))))


class EmbeddingNet(nn.Cell):
    """Embedding(20,4) of 3 int32 tokens -> Flatten -> Dense(12,5): 2.10 exports Gather and,
    as its gradient, UnsortedSegmentSum."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.embed(x)))


class GlobalPoolNet(nn.Cell):
    """Conv(3,4,3, same) + ReLU + AdaptiveAvgPool2d(1) + Flatten + Dense(4,5): 2.10 exports
    AdaptiveAvgPool2D{output_size (1, 1)} and AdaptiveAvgPool2DGrad."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


class SliceMLP(nn.Cell):
    """Dense(16,12) -> h[:, 2:8] ReLU + h[:, 1::2] * h[:, -1] -> Dense(6,5): 2.10 exports
    StridedSlice / StridedSliceGrad with begin / end masks, a step and a shrunk negative
    integer index. (Not a negative step: 2.10's CPU StridedSliceGrad returns zeros for one,
    docs/OPS.md.)"""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(6, 5)

    def construct(self, x):
        h = self.fc1(x)
        return self.fc2(self.relu(h[:, 2:8]) + h[:, 1::2] * ops.expand_dims(h[:, -1], 1))


class SplitMLP(nn.Cell):
    """Dense(16,16) -> ops.split into 4 pieces a, b, c, d -> a * Sigmoid(b) + c (d unused)
    -> Dense(4,5): 2.10 exports Split and a Concat gradient with zeros for d."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 16)
        self.sigmoid = nn.Sigmoid()
        self.fc2 = nn.Dense(4, 5)

    def construct(self, x):
        a, b, c, _ = ops.split(self.fc1(x), 4, axis=1)
        return self.fc2(a * self.sigmoid(b) + c)


class BatchMatMulNet(nn.Cell):
    """Dense(16,12) -> (8,3,4) -> ops.matmul with a (4,4) weight -> ops.matmul with its own
    transpose (8,3,4)@(8,4,3) -> (8,9) -> Dense(9,5): 2.10 exports MatMulExt on 3-D @ 2-D and
    3-D @ 3-D operands, with its Transpose / Reshape gradient forms."""

    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.w = ms.Parameter(Tensor(np.random.default_rng(5).standard_normal((4, 4))
                                     .astype(np.float32) * 0.5), name="w")
        self.fc2 = nn.Dense(9, 5)

    def construct(self, x):
        h = self.fc1(x).reshape(BATCH, 3, 4)
        a = ops.matmul(h, self.w)
        return self.fc2(ops.matmul(a, ops.transpose(h, (0, 2, 1))).reshape(BATCH, 9))


class GroupNormNet(nn.Cell):
    """Conv(3,4,3, same) + GroupNorm(2, 4) + ReLU + MaxPool(2, 2) + Flatten + Dense(64,5):
    2.10 exports GroupNorm(x, num_groups, gamma, beta, eps) and GroupNormGrad(dy, x, mean,
    rstd, gamma, num_groups, True, True, True)."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.norm = nn.GroupNorm(2, 4)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 4 * 4, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.norm(self.conv(x))))))


# -- nn.PReLU, nn.Mish, nn.Dropout2d (todkit/opset/more_activations.py) ---------------------
class PReLUNet(nn.Cell):
    """Conv(3,4,3, same) + PReLU(4, w=[0.1, 0.2, 0.3, 0.4]) + Flatten + Dense(256,12) + PReLU()
    (one shared w, 0.25) + Dense(12,5): 2.10 exports PReLU(x, w) and PReLUGrad(dy, x, w) ->
    (dx, dw) for a 4-D input with a weight per channel and a 2-D input with a shared one."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.prelu1 = nn.PReLU(4, [0.1, 0.2, 0.3, 0.4])
        self.flatten = nn.Flatten()
        self.fc1 = nn.Dense(4 * 8 * 8, 12)
        self.prelu2 = nn.PReLU()
        self.fc2 = nn.Dense(12, 5)

    def construct(self, x):
        h = self.fc1(self.flatten(self.prelu1(self.conv(x))))
        return self.fc2(self.prelu2(h))


class ChannelDropoutNet(nn.Cell):
    """Conv(3,4,3, same) + ReLU + ops.Dropout2D(keep_prob=1.0) + Flatten + Dense(256,5): 2.10
    exports Dropout2D{keep_prob} -> (y, bool mask) and, as its gradient, Cast(mask) *
    Muls(dout, 1 / keep_prob). (nn.Dropout2d(p=0) returns its input without the op; keep_prob
    1 keeps the run deterministic, as the random masks of MindSpore and todkit differ.)"""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.relu = nn.ReLU()
        self.dropout = ops.Dropout2D(keep_prob=1.0)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 8 * 8, 5)

    def construct(self, x):
        h, _ = self.dropout(self.relu(self.conv(x)))
        return self.fc(self.flatten(h))


# -- data ----------------------------------------------------------------------------------
def class_batches(seed, shape, classes, dense=False, noise=1.0):
    """Per-class prototypes plus noise: learnable, so the losses move. x float32; y int32
    labels, or one-hot float32 with ``dense``."""
    rng = np.random.default_rng(seed)
    protos = rng.standard_normal((classes, *shape)).astype(np.float32)
    y = rng.integers(0, classes, size=(N_BATCHES, BATCH)).astype(np.int32)
    x = (protos[y] + noise * rng.standard_normal((N_BATCHES, BATCH, *shape))).astype(np.float32)
    if dense:
        return x, np.eye(classes, dtype=np.float32)[y]
    return x, y


def token_batches(seed, vocab=20, tokens=3, classes=5):
    """int32 token ids [N_BATCHES, BATCH, tokens] (repeats within a batch, so the embedding
    gradient sums rows) and labels from the first token: learnable."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, vocab, size=(N_BATCHES, BATCH, tokens)).astype(np.int32)
    return x, (x[..., 0] % classes).astype(np.int32)


# -- the runs ------------------------------------------------------------------------------
SPARSE_MEAN = "SoftmaxCrossEntropyWithLogits(sparse=True, reduction='mean')"
DENSE_NONE = "SoftmaxCrossEntropyWithLogits() (sparse=False, reduction='none')"
MSE = "MSELoss() (reduction='mean') against one-hot targets"
L1 = "L1Loss() (reduction='mean') against one-hot targets"
CE = "CrossEntropyLoss() (reduction='mean')"
NLL = "NLLLoss() (reduction='mean') of a LogSoftmax"
BCE_LOGITS = "BCEWithLogitsLoss() (reduction='mean', weight and pos_weight None) against one-hot"
BCE_LOGITS_WEIGHTS = ("BCEWithLogitsLoss(weight=linspace(0.5, 2, 5), pos_weight=linspace(3, 1, "
                      "5)) (reduction='mean') against one-hot")
LOSSES = {
    CE: lambda: nn.CrossEntropyLoss(),
    NLL: lambda: nn.NLLLoss(),
    SPARSE_MEAN: lambda: nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"),
    DENSE_NONE: lambda: nn.SoftmaxCrossEntropyWithLogits(),
    MSE: lambda: nn.MSELoss(),
    L1: lambda: nn.L1Loss(),
    BCE_LOGITS: lambda: nn.BCEWithLogitsLoss(),
    BCE_LOGITS_WEIGHTS: lambda: nn.BCEWithLogitsLoss(
        weight=Tensor(np.linspace(0.5, 2.0, 5).astype(np.float32)),
        pos_weight=Tensor(np.linspace(3.0, 1.0, 5).astype(np.float32))),
}


def runs():
    """name -> (net factory, loss, optimizer factory(params) + description, data, steps)."""
    mlp_data = lambda: class_batches(11, (64,), 10)
    cnn_data = lambda: class_batches(12, (3, 17, 17), 5)
    img8 = lambda seed, dense=False: class_batches(seed, (3, 8, 8), 5, dense)
    vec16 = lambda seed, dense=False: class_batches(seed, (16,), 5, dense)
    momentum = dict(opt=lambda p: nn.Momentum(p, learning_rate=0.05, momentum=0.9),
                    opt_desc={"type": "nn.Momentum", "learning_rate": 0.05, "momentum": 0.9})
    return {
        "mlp_mse_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5)",
            net=lambda: ActMLP(nn.ReLU()), loss=MSE, data=lambda: vec16(16, True), steps=16,
            **momentum),
        "mlp_l1_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5)",
            net=lambda: ActMLP(nn.ReLU()), loss=L1, data=lambda: vec16(17, True), steps=16,
            **momentum),
        "leakyrelu_momentum": dict(
            net_desc="Dense(16,12) + LeakyReLU(0.2) + Dense(12,5)",
            net=lambda: ActMLP(nn.LeakyReLU(0.2)), loss=SPARSE_MEAN, data=lambda: vec16(18),
            steps=16, **momentum),
        "elu_momentum": dict(
            net_desc="Dense(16,12) + ELU() + Dense(12,5)",
            net=lambda: ActMLP(nn.ELU()), loss=SPARSE_MEAN, data=lambda: vec16(19), steps=16,
            **momentum),
        "softmax_logsoftmax_momentum": dict(
            net=GatedLogSoftmax, loss=SPARSE_MEAN, data=lambda: vec16(21), steps=16,
            **momentum),
        "tile_pow_log_momentum": dict(
            net=TilePowLog, loss=SPARSE_MEAN, data=lambda: vec16(22), steps=16, **momentum),
        "conv_transpose_adam": dict(
            net=TransposedConvNet, loss=SPARSE_MEAN, data=lambda: img8(23), steps=16,
            opt=lambda p: nn.Adam(p, learning_rate=0.01),
            opt_desc={"type": "nn.Adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                      "eps": 1e-8, "weight_decay": 0.0, "use_nesterov": False}),
        "cross_entropy_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5)",
            net=lambda: ActMLP(nn.ReLU()), loss=CE, data=lambda: vec16(24), steps=16,
            **momentum),
        "nll_logsoftmax_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5) + LogSoftmax",
            net=lambda: nn.SequentialCell([ActMLP(nn.ReLU()), nn.LogSoftmax()]), loss=NLL,
            data=lambda: vec16(25), steps=16, **momentum),
        "layernorm_adam": dict(
            net=LayerNormMLP, loss=SPARSE_MEAN, data=lambda: vec16(20), steps=16,
            opt=lambda p: nn.Adam(p, learning_rate=0.01),
            opt_desc={"type": "nn.Adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                      "eps": 1e-8, "weight_decay": 0.0, "use_nesterov": False}),
        "mlp_momentum": dict(
            net=MLP, loss=SPARSE_MEAN, data=mlp_data, steps=20,
            opt=lambda p: nn.Momentum(p, learning_rate=0.05, momentum=0.9),
            opt_desc={"type": "nn.Momentum", "learning_rate": 0.05, "momentum": 0.9}),
        "mlp_sgd": dict(
            net=MLP, loss=SPARSE_MEAN, data=mlp_data, steps=20,
            opt=lambda p: nn.SGD(p, learning_rate=0.05, momentum=0.9, dampening=0.1),
            opt_desc={"type": "nn.SGD", "learning_rate": 0.05, "momentum": 0.9,
                      "dampening": 0.1, "weight_decay": 0.0, "nesterov": False}),
        "mlp_adam_nesterov_wd": dict(
            net=MLP, loss=SPARSE_MEAN, data=mlp_data, steps=20,
            opt=lambda p: nn.Adam(p, learning_rate=0.01, weight_decay=0.1, use_nesterov=True),
            opt_desc={"type": "nn.Adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                      "eps": 1e-8, "weight_decay": 0.1, "use_nesterov": True}),
        "cnn_adam": dict(
            net=SmallCNN, loss=SPARSE_MEAN, data=cnn_data, steps=16,
            opt=lambda p: nn.Adam(p, learning_rate=0.01),
            opt_desc={"type": "nn.Adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                      "eps": 1e-8, "weight_decay": 0.0, "use_nesterov": False}),
        "bn_momentum": dict(
            net=BNNet, loss=SPARSE_MEAN, data=lambda: img8(13), steps=16,
            opt=lambda p: nn.Momentum(p, learning_rate=0.05, momentum=0.9),
            opt_desc={"type": "nn.Momentum", "learning_rate": 0.05, "momentum": 0.9}),
        "transfer_head_sgd": dict(
            net=TransferNet, loss=DENSE_NONE, data=lambda: img8(14, dense=True), steps=16,
            trainable=lambda net: net.head.trainable_params(),
            opt=lambda p: nn.SGD(p, learning_rate=0.005, momentum=0.9, dampening=0.01),
            opt_desc={"type": "nn.SGD", "learning_rate": 0.005, "momentum": 0.9,
                      "dampening": 0.01, "params": "head only"}),
        "depthwise_avgpool_dropout": dict(
            net=DepthwiseNet, loss=SPARSE_MEAN, data=lambda: img8(15), steps=16,
            opt=lambda p: nn.Adam(p, learning_rate=0.01),
            opt_desc={"type": "nn.Adam", "learning_rate": 0.01, "beta1": 0.9, "beta2": 0.999,
                      "eps": 1e-8, "weight_decay": 0.0, "use_nesterov": False}),
        # nn.Embedding, nn.BCEWithLogitsLoss, nn.SiLU, nn.AdaptiveAvgPool2d(1)
        # (todkit/opset/extra_layers.py, formats/mindir/lowered.LOWERED)
        "embedding_momentum": dict(
            net=EmbeddingNet, loss=SPARSE_MEAN, data=lambda: token_batches(23), steps=16,
            **momentum),
        "bce_logits_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5)",
            net=lambda: ActMLP(nn.ReLU()), loss=BCE_LOGITS, data=lambda: vec16(24, True),
            steps=16, **momentum),
        "bce_logits_weights_momentum": dict(
            net_desc="Dense(16,12) + ReLU + Dense(12,5)",
            net=lambda: ActMLP(nn.ReLU()), loss=BCE_LOGITS_WEIGHTS,
            data=lambda: vec16(27, True), steps=16, **momentum),
        "silu_momentum": dict(
            net_desc="Dense(16,12) + SiLU() + Dense(12,5)",
            net=lambda: ActMLP(nn.SiLU()), loss=SPARSE_MEAN, data=lambda: vec16(25), steps=16,
            **momentum),
        "adaptive_avgpool_momentum": dict(
            net=GlobalPoolNet, loss=SPARSE_MEAN, data=lambda: img8(26), steps=16, **momentum),
        # tensor slicing, ops.split, batched ops.matmul
        "slice_momentum": dict(
            net=SliceMLP, loss=SPARSE_MEAN, data=lambda: vec16(30), steps=16, **momentum),
        "split_momentum": dict(
            net=SplitMLP, loss=SPARSE_MEAN, data=lambda: vec16(31), steps=16, **momentum),
        "batchmatmul_momentum": dict(
            net=BatchMatMulNet, loss=SPARSE_MEAN, data=lambda: vec16(32), steps=16,
            # the product of h with itself is cubic in fc1: lr 0.05 diverges by step 14
            opt=lambda p: nn.Momentum(p, learning_rate=0.02, momentum=0.9),
            opt_desc={"type": "nn.Momentum", "learning_rate": 0.02, "momentum": 0.9}),
        # nn.GroupNorm (todkit/opset/group_norm.py)
        "groupnorm_momentum": dict(
            net=GroupNormNet, loss=SPARSE_MEAN, data=lambda: img8(33), steps=16, **momentum),
        # nn.PReLU, nn.Mish, nn.Dropout2d (todkit/opset/more_activations.py,
        # formats/mindir/lowered.LOWERED, converter/lite_forms.py)
        "prelu_momentum": dict(
            net=PReLUNet, loss=SPARSE_MEAN, data=lambda: img8(33), steps=16, **momentum),
        "mish_momentum": dict(
            net_desc="Dense(16,12) + Mish() + Dense(12,5)",
            net=lambda: ActMLP(nn.Mish()), loss=SPARSE_MEAN, data=lambda: vec16(34), steps=16,
            **momentum),
        "dropout2d_momentum": dict(
            net=ChannelDropoutNet, loss=SPARSE_MEAN, data=lambda: img8(35), steps=16,
            # lr 0.05 drives the loss to 4e-5 by step 16, where float32 rounding dominates
            opt=lambda p: nn.Momentum(p, learning_rate=0.01, momentum=0.9),
            opt_desc={"type": "nn.Momentum", "learning_rate": 0.01, "momentum": 0.9}),
    }


class OptimizerGrads(nn.Cell):
    """The gradients the optimizer op receives: d(loss)/d(params) (sens = ones, as
    TrainOneStepCell), then the optimizer's weight decay."""

    def __init__(self, loss_net, optimizer):
        super().__init__(auto_prefix=False)
        self.loss_net = loss_net
        self.optimizer = optimizer
        self.weights = optimizer.parameters
        self.grad = ops.GradOperation(get_by_list=True)

    def construct(self, x, y):
        grads = self.grad(self.loss_net, self.weights)(x, y)
        return self.optimizer.decay_weight(grads)


def snapshot(cell) -> dict[str, np.ndarray]:
    return {p.name: p.asnumpy().copy() for p in cell.get_parameters()}


def restore(cell, state) -> None:
    for p in cell.get_parameters():
        p.set_data(Tensor(state[p.name]))


def record(name: str, spec: dict, out: Path) -> dict:
    ms.set_seed(1)
    np.random.seed(1)
    net = spec["net"]()
    loss_fn = LOSSES[spec["loss"]]()
    loss_net = nn.WithLossCell(net, loss_fn)
    trainable = spec.get("trainable", lambda n: n.trainable_params())(net)
    optimizer = spec["opt"](ParameterTuple(trainable))
    train_net = nn.TrainOneStepCell(loss_net, optimizer)
    train_net.set_train(True)
    xs, ys = spec["data"]()

    d = out / name
    d.mkdir(parents=True, exist_ok=True)
    init = snapshot(train_net)
    ms.export(train_net, Tensor(xs[0]), Tensor(ys[0]), file_name=str(d / "train"),
              file_format="MINDIR")

    net.set_train(False)
    logits = net(Tensor(xs[0])).asnumpy()
    net.set_train(True)
    grad_net = OptimizerGrads(loss_net, optimizer)
    grad_net.set_train(True)
    grads = grad_net(Tensor(xs[0]), Tensor(ys[0]))
    grads = {p.name: g.asnumpy() for p, g in zip(optimizer.parameters, grads)}
    restore(train_net, init)  # the gradient pass ran training-mode BatchNorm
    assert all(np.array_equal(v, init[k]) for k, v in snapshot(train_net).items())

    losses = []
    for i in range(spec["steps"]):
        loss = train_net(Tensor(xs[i % N_BATCHES]), Tensor(ys[i % N_BATCHES])).asnumpy()
        losses.append(float(loss) if loss.ndim == 0 else [float(v) for v in loss])
    final = snapshot(train_net)

    np.save(d / "ref_x.npy", xs)
    np.save(d / "ref_y.npy", ys)
    np.savez(d / "init_train_state.npz", **init)
    np.save(d / "init_logits_b0.npy", logits)
    np.savez(d / "init_grads.npz", **grads)
    np.savez(d / "final_train_state.npz", **final)
    meta = {
        "model": name,
        "mindspore_version": ms.__version__,
        "mode": "GRAPH_MODE",
        "device_target": "CPU",
        "net": spec.get("net_desc") or (type(net).__doc__ or type(net).__name__).split("\n")[0],
        "loss_fn": spec["loss"],
        "optimizer": spec["opt_desc"],
        "trainable": [p.name for p in optimizer.parameters],
        "batch": BATCH,
        "n_batches": N_BATCHES,
        "schedule": "step i (0-based) uses batch i % n_batches of ref_x.npy / ref_y.npy",
        "semantics": "loss[i] is the value TrainOneStepCell returns at step i, computed with "
                     "the parameters before step i's update; final_train_state.npz holds every "
                     "parameter after the last step",
        "init_logits_b0": "net(batch 0) with set_train(False), initial parameters",
        "init_grads": "GradOperation(get_by_list=True) of the loss net on batch 0 (sens = "
                      "ones) then Optimizer.decay_weight: what the optimizer op receives",
        "steps": spec["steps"],
        "loss": losses,
    }
    (d / "run.json").write_text(json.dumps(meta, indent=1) + "\n")
    return meta


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("names", nargs="*", help="runs to record (default: all)")
    args = ap.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    table = runs()
    for name in args.names or table:
        if name not in table:
            ap.error(f"unknown run {name!r}; known: {', '.join(table)}")
        meta = record(name, table[name], args.out)
        first, last = meta["loss"][0], meta["loss"][-1]
        print(f"{name}: loss {np.mean(first):.5f} -> {np.mean(last):.5f}", flush=True)
    size = sum(f.stat().st_size for f in args.out.rglob("*") if f.is_file())
    print(f"{args.out}: {size / 1e6:.2f} MB", flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("GLOG_v", "3")
    sys.exit(main())
