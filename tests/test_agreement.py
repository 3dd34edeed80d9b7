"""Front end and device runtime agree: the same steps from the same weights and data give
the same losses and weights (eager TrainOneStepCell vs run_step on the converted file)."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from todkit import lite, nn
from todkit.converter.convert import convert
from todkit.formats import ms
from todkit.ops import operations as P


class SmallNet(nn.Cell):
    def __init__(self, c, h, w, classes):
        super().__init__()
        self.chw = c * h * w
        self.fc = nn.Dense(self.chw, classes)

    def construct(self, x):
        return self.fc(P.Reshape()(x, (-1, self.chw)))


class SmallCNN(nn.Cell):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(1, 4, 3, pad_mode="valid", has_bias=True)
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 3 * 3, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))


def _weights_after_export(model, path):
    model.export(str(path))
    # conv weights are stored KHWC in a converted model, as the real converter stores them
    return {c.name: c.data.transpose(0, 3, 1, 2) if c.format == "KHWC" else c.data.copy()
            for c in ms.read(str(path)).graph.consts if c.param}


CASES = {
    "dense-adam": lambda: (SmallNet(2, 4, 4, 3), nn.SoftmaxCrossEntropyWithLogits(),
                           lambda p: nn.Adam(p, learning_rate=0.01), (4, 2, 4, 4), "dense"),
    "cnn-momentum-sparse": lambda: (SmallCNN(), nn.SoftmaxCrossEntropyWithLogits(
        sparse=True, reduction="mean"), lambda p: nn.Momentum(p, 0.05, 0.9), (6, 1, 8, 8),
        "sparse"),
    "cnn-sgd-sparse": lambda: (SmallCNN(), nn.SoftmaxCrossEntropyWithLogits(
        sparse=True, reduction="mean"), lambda p: nn.SGD(p, 0.05, momentum=0.9), (6, 1, 8, 8),
        "sparse"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_eager_and_runtime_agree(tmp_path, case):
    M.set_seed(3)
    net, loss_fn, make_opt, shape, kind = CASES[case]()
    classes = 3 if kind == "dense" else 5
    opt = make_opt(net.trainable_params())
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss_fn), opt)
    rng = np.random.default_rng(1)
    xs = [rng.standard_normal(shape).astype(np.float32) for _ in range(5)]
    ids = [rng.integers(0, classes, shape[0]) for _ in range(5)]
    if kind == "dense":
        labels = [np.eye(classes, dtype=np.float32)[i] for i in ids]
    else:
        labels = [i.astype(np.int32) for i in ids]

    M.export(train_net, M.Tensor(xs[0]), M.Tensor(labels[0]), file_name=str(tmp_path / "m"))
    convert(str(tmp_path / "m.mindir"), str(tmp_path / "m"), train_model=True)

    eager = [float(np.sum(train_net(M.Tensor(x), M.Tensor(y)).asnumpy()))
             for x, y in zip(xs, labels)]
    eager_w = {p.name: p.asnumpy().copy() for p in net.trainable_params()}

    model = lite.Model()
    model.build_from_file(str(tmp_path / "m.ms"), lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    model.set_train_mode(True)
    device = []
    for x, y in zip(xs, labels):
        data, label = model.get_inputs()
        # a converted model's 4-D input is NHWC, as the real converter makes it
        data.set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
        label.set_data_from_numpy(y)
        model.run_step()
        device.append(float(np.sum(model.get_outputs()[0].get_data_to_numpy())))
    np.testing.assert_allclose(device, eager, rtol=1e-5)
    dev_w = _weights_after_export(model, tmp_path / "trained.ms")
    for name, w in eager_w.items():
        np.testing.assert_allclose(dev_w[name], w, rtol=1e-5, atol=1e-7, err_msg=name)
