"""Every front-end loss, exported in a train graph, converted and trained on the device,
gives the losses the eager front end gives (a scalar loss's sens reaches its gradient op as
the [1] constant the converter writes: NLLLoss / CrossEntropyLoss used to stop there)."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from todkit import lite, nn
from todkit.converter.convert import convert

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
    M.export(train, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / name),
             file_format="MINDIR")
    model = lite.Model()
    model.build_from_file(convert(str(tmp_path / f"{name}.mindir"), str(tmp_path / name), True),
                          lite.ModelType.MINDIR_LITE, lite.Context(), train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(x)
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    device = []
    for _ in range(3):
        model.run_step()
        device.append(model.get_outputs()[0].get_data_to_numpy().reshape(-1).copy())
    eager = [np.asarray(train(M.Tensor(x), M.Tensor(y)).asnumpy()).reshape(-1) for _ in range(3)]
    np.testing.assert_allclose(np.concatenate(device), np.concatenate(eager), rtol=1e-5,
                               atol=1e-6)
