"""MindSpore 2.10 CPU in graph mode: nn.TrainOneStepCell(WithLossCell(net, sparse softmax
cross entropy), optimizer); one step = ``train_net(x, label)`` and reading the loss.

Thread count: ``mindspore.device_context.cpu.op_tuning.threads_num`` (plus the OMP/OpenBLAS
variables the parent sets). MobileNetV2 and GoogleNet (W4, W5) are the model zoo's networks
as todkit.models defines them (same layers, channels and parameter names; weights left to
MindSpore's default initialisers: the timing does not depend on them), trained classifier
only as the other frameworks train them.
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
    if w.model == "mobilenetv2":
        return _mobilenetv2(w.classes)
    if w.model == "googlenet":
        return _googlenet(w.classes)
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


def _mobilenetv2(classes):
    """official/cv/MobileNet/mobilenetv2 at width 1.0 (as todkit.models.mobilenetv2)."""
    import mindspore.ops as ops
    from mindspore import nn

    def conv_bn_relu(i, o, k=3, s=1, groups=1):
        return nn.SequentialCell([nn.Conv2d(i, o, k, s, pad_mode="pad", padding=(k - 1) // 2,
                                            group=groups), nn.BatchNorm2d(o), nn.ReLU6()])

    class InvertedResidual(nn.Cell):
        def __init__(self, i, o, s, t):
            super().__init__()
            hidden = round(i * t)
            self.res = s == 1 and i == o
            layers = [conv_bn_relu(i, hidden, k=1)] if t != 1 else []
            layers += [conv_bn_relu(hidden, hidden, s=s, groups=hidden),
                       nn.Conv2d(hidden, o, 1, 1, has_bias=False), nn.BatchNorm2d(o)]
            self.conv = nn.SequentialCell(layers)

        def construct(self, x):
            if self.res:
                return x + self.conv(x)
            return self.conv(x)

    class MobileNetV2(nn.Cell):
        def __init__(self):
            super().__init__()
            layers, c = [conv_bn_relu(3, 32, s=2)], 32
            for t, o, n, s in [[1, 16, 1, 1], [6, 24, 2, 2], [6, 32, 3, 2], [6, 64, 4, 2],
                               [6, 96, 3, 1], [6, 160, 3, 2], [6, 320, 1, 1]]:
                for k in range(n):
                    layers.append(InvertedResidual(c, o, s if k == 0 else 1, t))
                    c = o
            layers.append(conv_bn_relu(c, 1280, k=1))
            self.features = nn.SequentialCell(layers)
            self.mean = ops.ReduceMean(keep_dims=False)
            self.dense = nn.Dense(1280, classes)

        def construct(self, x):
            return self.dense(self.mean(self.features(x), (2, 3)))
    return MobileNetV2()


def _googlenet(classes):
    """official/cv/googlenet (as todkit.models.googlenet): Conv2d + BatchNorm(eps 1e-3) +
    ReLU blocks, the '5x5' branch a 3x3 as the zoo has it, Dense ``classifier``."""
    import mindspore.ops as ops
    from mindspore import nn

    def block(i, o, k=1, s=1):
        return nn.SequentialCell([nn.Conv2d(i, o, k, s, pad_mode="same"),
                                  nn.BatchNorm2d(o, eps=0.001), nn.ReLU()])

    class Inception(nn.Cell):
        def __init__(self, i, n1, r3, n3, r5, n5, pool):
            super().__init__()
            self.b1 = block(i, n1)
            self.b2 = nn.SequentialCell([block(i, r3), block(r3, n3, 3)])
            self.b3 = nn.SequentialCell([block(i, r5), block(r5, n5, 3)])
            self.pool = nn.MaxPool2d(3, 1, pad_mode="same")
            self.b4 = block(i, pool)
            self.concat = ops.Concat(axis=1)

        def construct(self, x):
            return self.concat((self.b1(x), self.b2(x), self.b3(x), self.b4(self.pool(x))))

    class GoogleNet(nn.Cell):
        def __init__(self):
            super().__init__()
            pool = nn.MaxPool2d(3, 2, pad_mode="same")
            self.features = nn.SequentialCell([
                block(3, 64, 7, 2), pool, block(64, 64), block(64, 192, 3),
                nn.MaxPool2d(3, 2, pad_mode="same"),
                Inception(192, 64, 96, 128, 16, 32, 32), Inception(256, 128, 128, 192, 32, 96, 64),
                nn.MaxPool2d(3, 2, pad_mode="same"),
                Inception(480, 192, 96, 208, 16, 48, 64), Inception(512, 160, 112, 224, 24, 64, 64),
                Inception(512, 128, 128, 256, 24, 64, 64),
                Inception(512, 112, 144, 288, 32, 64, 64),
                Inception(528, 256, 160, 320, 32, 128, 128), nn.MaxPool2d(2, 2, pad_mode="same"),
                Inception(832, 256, 160, 320, 32, 128, 128),
                Inception(832, 384, 192, 384, 48, 128, 128)])
            self.mean = ops.ReduceMean(keep_dims=False)
            self.classifier = nn.Dense(1024, classes)

        def construct(self, x):
            return self.classifier(self.mean(self.features(x), (2, 3)))
    return GoogleNet()


def _trained(net, w):
    """The parameters the optimizer updates: all, or the classifier's (W4, W5 as in
    fw_todkit.build_net)."""
    params = net.trainable_params()
    if w.trains == "classifier":
        head = [p for p in params if any(k in p.name for k in ("classifier", "dense", "fc"))]
        params = head or params[-2:]
    return params


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
    params = _trained(net, w)
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
