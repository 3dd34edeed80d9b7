"""Every front-end loss, exported in a train graph, converted and trained on the device,
gives the losses the eager front end gives (a scalar loss's sens reaches its gradient op as
the [1] constant the converter writes: NLLLoss / CrossEntropyLoss used to stop there)."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from tests.lite_models import device_against_eager
from todkit import nn

LABELS = (np.arange(8) % 5).astype(np.int32)
ONE_HOT = np.eye(5, dtype=np.float32)[LABELS]
CASES = {
    "mse": (lambda: nn.MSELoss(), ONE_HOT, None),
    "l1": (lambda: nn.L1Loss(), ONE_HOT, None),
    "smooth_l1_none": (lambda: nn.SmoothL1Loss(), ONE_HOT, None),
    "smooth_l1_mean": (lambda: nn.SmoothL1Loss(reduction="mean"), ONE_HOT, None),
    "bce": (lambda: nn.BCELoss(reduction="mean"), ONE_HOT, nn.Sigmoid),
    "bce_with_logits": (lambda: nn.BCEWithLogitsLoss(), ONE_HOT, None),
    "nll": (lambda: nn.NLLLoss(), LABELS, nn.LogSoftmax),
    "cross_entropy": (lambda: nn.CrossEntropyLoss(), LABELS, None),
    "softmax_ce_dense": (lambda: nn.SoftmaxCrossEntropyWithLogits(reduction="mean"), ONE_HOT,
                         None),
    "softmax_ce_sparse_none": (lambda: nn.SoftmaxCrossEntropyWithLogits(sparse=True), LABELS,
                               None),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_loss_trains_on_the_device_as_eagerly(name, tmp_path):
    make_loss, y, tail = CASES[name]
    x = np.random.default_rng(0).standard_normal((8, 16)).astype(np.float32)
    M.set_seed(1)
    net = nn.SequentialCell([nn.Dense(16, 12), nn.ReLU(), nn.Dense(12, 5)]
                            + ([tail()] if tail else []))
    train = nn.TrainOneStepCell(nn.WithLossCell(net, make_loss()),
                                nn.Momentum(net.trainable_params(), 0.05, 0.9))
    train.set_train(True)
    device, eager = device_against_eager(train, x, y, tmp_path, name)
    np.testing.assert_allclose(device, eager, rtol=1e-5, atol=1e-6)
