"""MindSpore 2.10 CPU in graph mode: nn.TrainOneStepCell(WithLossCell(net, sparse softmax
cross entropy), optimizer); one step = ``train_net(x, label)`` and reading the loss.

Thread count: ``mindspore.device_context.cpu.op_tuning.threads_num`` (plus the OMP/OpenBLAS
variables the parent sets). MobileNetV2 and GoogleNet (W4, W5) are not defined here: the issue
quotes 33-42 s per GoogleNet step for MindSpore, beyond a 10-minute benchmark run.
"""

from __future__ import annotations

import numpy as np
from workloads import MOMENTUM, batch_arrays


def prepare(w, cache, fw):
    return {}


def _net(w):
    import mindspore.ops as ops
    from mindspore import nn

    if w.model == "mlp":
        return nn.SequentialCell([nn.Dense(64, 32), nn.ReLU(), nn.Dense(32, w.classes)])
    if w.model == "head":
        return nn.Dense(w.input_shape[0], w.classes)
    if w.model == "seednet":
        n_in = int(np.prod(w.input_shape))

        class MyNet(nn.Cell):
            def __init__(self):
                super().__init__()
                self.fc = nn.Dense(n_in, w.classes)

            def construct(self, x):
                return self.fc(ops.reshape(x, (-1, n_in)))
        return MyNet()
    if w.model == "lenet5":
        class LeNet5(nn.Cell):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid")
                self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
                self.fc1, self.fc2 = nn.Dense(400, 120), nn.Dense(120, 84)
                self.fc3 = nn.Dense(84, w.classes)
                self.relu, self.flatten = nn.ReLU(), nn.Flatten()
                self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

            def construct(self, x):
                x = self.pool(self.relu(self.conv1(x)))
                x = self.pool(self.relu(self.conv2(x)))
                x = self.flatten(x)
                return self.fc3(self.relu(self.fc2(self.relu(self.fc1(x)))))
        return LeNet5()
    if w.model == "resnet18":
        return _resnet18(w.classes)
    raise NotImplementedError(f"{w.model} is not defined for MindSpore in this benchmark")


def _resnet18(classes):
    from mindspore import nn

    def conv_bn(i, o, k, s):
        return nn.SequentialCell([nn.Conv2d(i, o, k, s, pad_mode="pad", padding=k // 2),
                                  nn.BatchNorm2d(o)])

    class Block(nn.Cell):
        def __init__(self, i, o, s):
            super().__init__()
            self.a, self.b = conv_bn(i, o, 3, s), conv_bn(o, o, 3, 1)
            self.relu = nn.ReLU()
            self.has_down = s != 1 or i != o
            self.down = conv_bn(i, o, 1, s) if self.has_down else nn.Identity()

        def construct(self, x):
            y = self.b(self.relu(self.a(x)))
            return self.relu(y + self.down(x))

    class ResNet18(nn.Cell):
        def __init__(self):
            super().__init__()
            layers = [conv_bn(3, 64, 7, 2), nn.ReLU(),
                      nn.MaxPool2d(3, 2, pad_mode="pad", padding=1)]
            c = 64
            for o, s in [(64, 1), (128, 2), (256, 2), (512, 2)]:
                layers += [Block(c, o, s), Block(o, o, 1)]
                c = o
            self.features = nn.SequentialCell(layers)
            self.pool, self.flatten = nn.AdaptiveAvgPool2d(1), nn.Flatten()
            self.classifier = nn.Dense(512, classes)

        def construct(self, x):
            return self.classifier(self.flatten(self.pool(self.features(x))))
    return ResNet18()


def setup(w, threads, cache, fw):
    import mindspore as ms
    from mindspore import nn

    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    try:
        ms.device_context.cpu.op_tuning.threads_num(threads)
    except Exception as e:
        print(f"threads_num: {e}")
    ms.set_seed(1)
    net = _net(w)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    params = net.trainable_params()
    if w.optimizer == "adam":
        opt = nn.Adam(params, learning_rate=w.lr)
    elif w.optimizer == "momentum":
        opt = nn.Momentum(params, learning_rate=w.lr, momentum=MOMENTUM)
    else:
        opt = nn.SGD(params, learning_rate=w.lr)
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
    train_net.set_train()
    x, y = batch_arrays(w, np)
    xt, yt = ms.Tensor(x), ms.Tensor(y)

    def step():
        return train_net(xt, yt).asnumpy()
    return step, {"mindspore": ms.__version__}
