"""The front end trains the reference runs' nets (tests/fixtures/reference, recorded with real
MindSpore 2.10) from MindSpore's initial parameters to MindSpore's losses and final weights:
the layers whose 2.10 exports todkit reads (ELU, LeakyReLU, LayerNorm, GroupNorm, MSELoss,
L1Loss, Softmax / LogSoftmax) behave as MindSpore's do when todkit itself differentiates them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import todkit as M
from tests.lite_models import device_against_eager
from todkit import nn

REF = Path(__file__).resolve().parent / "fixtures" / "reference"


class ActMLP(nn.Cell):
    def __init__(self, act):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.act = act
        self.fc2 = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc2(self.act(self.fc1(x)))


class EmbeddingNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(20, 4)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.embed(x)))


class TransposedConvNet(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.up = nn.Conv2dTranspose(4, 4, 2, stride=2, has_bias=True)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 16 * 16, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.relu(self.up(self.relu(self.conv(x))))))


class LayerNormMLP(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.norm = nn.LayerNorm((12,))
        self.relu = nn.ReLU()
        self.fc2 = nn.Dense(12, 5)

    def construct(self, x):
        return self.fc2(self.relu(self.norm(self.fc1(x))))


class GatedLogSoftmax(nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Dense(16, 12)
        self.softmax = nn.Softmax()
        self.fc2 = nn.Dense(12, 5)
        self.log_softmax = nn.LogSoftmax()

    def construct(self, x):
        h = self.fc1(x)
        return self.log_softmax(self.fc2(h * self.softmax(h)))


class GroupNormNet(nn.Cell):
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


class PReLUNet(nn.Cell):
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


SPARSE = lambda: nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
MOMENTUM = lambda p: nn.Momentum(p, learning_rate=0.05, momentum=0.9)
RUNS = {
    "elu_momentum": (lambda: ActMLP(nn.ELU()), SPARSE, MOMENTUM),
    "leakyrelu_momentum": (lambda: ActMLP(nn.LeakyReLU(0.2)), SPARSE, MOMENTUM),
    "mlp_mse_momentum": (lambda: ActMLP(nn.ReLU()), nn.MSELoss, MOMENTUM),
    "mlp_l1_momentum": (lambda: ActMLP(nn.ReLU()), nn.L1Loss, MOMENTUM),
    "softmax_logsoftmax_momentum": (GatedLogSoftmax, SPARSE, MOMENTUM),
    "layernorm_adam": (LayerNormMLP, SPARSE, lambda p: nn.Adam(p, learning_rate=0.01)),
    "cross_entropy_momentum": (lambda: ActMLP(nn.ReLU()), nn.CrossEntropyLoss, MOMENTUM),
    "silu_momentum": (lambda: ActMLP(nn.SiLU()), SPARSE, MOMENTUM),
    "embedding_momentum": (EmbeddingNet, SPARSE, MOMENTUM),
    "conv_transpose_adam": (TransposedConvNet, SPARSE, lambda p: nn.Adam(p, learning_rate=0.01)),
    "nll_logsoftmax_momentum": (lambda: nn.SequentialCell([ActMLP(nn.ReLU()), nn.LogSoftmax()]),
                                nn.NLLLoss, MOMENTUM),
    "groupnorm_momentum": (GroupNormNet, SPARSE, MOMENTUM),
    # nn.PReLU (4-D per-channel and 2-D shared slopes) and nn.Mish
    "prelu_momentum": (PReLUNet, SPARSE, MOMENTUM),
    "mish_momentum": (lambda: ActMLP(nn.Mish()), SPARSE, MOMENTUM),
}


@pytest.mark.parametrize("name", sorted(RUNS))
def test_front_end_reproduces_the_mindspore_run(name):
    run = REF / name
    meta = json.loads((run / "run.json").read_text())
    make_net, make_loss, make_opt = RUNS[name]
    M.set_seed(1)
    net = make_net()
    init = np.load(run / "init_train_state.npz")
    for p in net.trainable_params():
        p.set_data(init[p.name])
    train = nn.TrainOneStepCell(nn.WithLossCell(net, make_loss()),
                                make_opt(net.trainable_params()))
    train.set_train(True)
    xs, ys = np.load(run / "ref_x.npy"), np.load(run / "ref_y.npy")
    n = meta["n_batches"]
    losses = [float(train(M.Tensor(xs[i % n]), M.Tensor(ys[i % n])).asnumpy())
              for i in range(meta["steps"])]
    np.testing.assert_allclose(losses, meta["loss"], rtol=1e-4, atol=1e-6)
    final = np.load(run / "final_train_state.npz")
    for p in net.trainable_params():
        np.testing.assert_allclose(p.asnumpy(), final[p.name], rtol=1e-4, atol=1e-5,
                                   err_msg=p.name)


@pytest.mark.parametrize("name", sorted(RUNS))
def test_the_front_end_export_trains_on_the_device_as_it_does_eagerly(name, tmp_path):
    run = REF / name
    make_net, make_loss, make_opt = RUNS[name]
    M.set_seed(1)
    net = make_net()
    train = nn.TrainOneStepCell(nn.WithLossCell(net, make_loss()),
                                make_opt(net.trainable_params()))
    train.set_train(True)
    x, y = np.load(run / "ref_x.npy")[0], np.load(run / "ref_y.npy")[0]
    device, eager = device_against_eager(train, x, y, tmp_path, name)
    np.testing.assert_allclose(device, eager, rtol=1e-5, atol=1e-6)
