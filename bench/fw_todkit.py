"""todkit: models defined with the front end; the device path trains the converted .ms with
``todkit.lite`` (framework ``todkit``), the eager front end runs ``train_net(x, label)``
(framework ``todkit-eager``, for information).

``prepare`` (its own process) exports MINDIR and runs ``converter_lite``; ``setup`` only loads
the .ms, so the device process's peak RSS is the runtime's own.
"""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
from workloads import MOMENTUM, batch_arrays

MODEL_NAMES = {  # todkit.models names tried, in order, for the models the issue needs
    "mobilenetv2": ("MobileNetV2", "mobilenet_v2", "mobilenetv2"),
    "googlenet": ("GoogleNet", "GoogLeNet", "googlenet"),
    "resnet18": ("ResNet18", "resnet18"),
}


class Pending(RuntimeError):
    """The model is not in todkit yet (reported as skipped, not as a failure)."""


def _zoo(name, classes):
    try:
        import todkit.models as zoo
    except ImportError as e:
        raise Pending(f"todkit.models does not exist yet ({e})") from None
    for attr in MODEL_NAMES[name]:
        ctor = getattr(zoo, attr, None)
        if ctor is not None:
            return ctor(num_classes=classes)
    raise Pending(f"todkit.models has none of {', '.join(MODEL_NAMES[name])}")


def build_net(w):
    """(network, trainable parameters) for workload ``w`` with todkit's front end."""
    from todkit import nn
    from todkit.ops import operations as P

    if w.model == "mlp":
        net = nn.SequentialCell([nn.Dense(64, 32), nn.ReLU(), nn.Dense(32, w.classes)]) \
            if hasattr(nn, "SequentialCell") else None
        if net is None:
            class MLP(nn.Cell):
                def __init__(self):
                    super().__init__()
                    self.fc1, self.fc2, self.relu = nn.Dense(64, 32), nn.Dense(32, 10), nn.ReLU()

                def construct(self, x):
                    return self.fc2(self.relu(self.fc1(x)))
            net = MLP()
        return net, net.trainable_params()
    if w.model == "lenet5":
        class LeNet5(nn.Cell):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(1, 6, 5, pad_mode="valid")
                self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
                self.fc1, self.fc2 = nn.Dense(400, 120), nn.Dense(120, 84)
                self.fc3 = nn.Dense(84, 10)
                self.relu, self.flatten = nn.ReLU(), nn.Flatten()
                self.pool = nn.MaxPool2d(kernel_size=2, stride=2)

            def construct(self, x):
                x = self.pool(self.relu(self.conv1(x)))
                x = self.pool(self.relu(self.conv2(x)))
                x = self.flatten(x)
                x = self.relu(self.fc1(x))
                x = self.relu(self.fc2(x))
                return self.fc3(x)
        net = LeNet5()
        return net, net.trainable_params()
    if w.model == "seednet":
        c, h, ww = w.input_shape

        class MyNet(nn.Cell):
            def __init__(self):
                super().__init__()
                self.fc = nn.Dense(c * h * ww, 10)

            def construct(self, x):
                return self.fc(P.Reshape()(x, (-1, c * h * ww)))
        net = MyNet()
        return net, net.trainable_params()
    if w.model == "head":
        net = nn.Dense(w.input_shape[0], w.classes)
        return net, net.trainable_params()
    net = _zoo(w.model, w.classes)
    params = net.trainable_params()
    if w.trains == "classifier":
        head = [p for p in params if any(k in p.name for k in ("head", "classifier", "fc",
                                                               "dense"))]
        params = head or params[-2:]
    return net, params


def build_train_net(w):
    from todkit import nn

    net, params = build_net(w)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    if w.optimizer == "adam":
        opt = nn.Adam(params, learning_rate=w.lr)
    elif w.optimizer == "momentum":
        opt = nn.Momentum(params, learning_rate=w.lr, momentum=MOMENTUM)
    else:
        opt = nn.SGD(params, learning_rate=w.lr)
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
    train_net.set_train()
    return train_net


def _paths(w, cache):
    return os.path.join(cache, f"todkit_{w.id}.mindir"), os.path.join(cache, f"todkit_{w.id}")


def prepare(w, cache, fw):
    if fw.startswith("todkit-eager"):
        return {}
    import todkit as M

    M.set_seed(1)
    train_net = build_train_net(w)
    x, y = batch_arrays(w, np)
    mindir, stem = _paths(w, cache)
    M.export(train_net, M.Tensor(x), M.Tensor(y), file_name=mindir, file_format="MINDIR")
    r = subprocess.run([sys.executable, "-m", "todkit.converter.cli", "--fmk=MINDIR",
                        "--trainModel=true", f"--modelFile={mindir}", f"--outputFile={stem}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"converter_lite failed: {r.stdout}{r.stderr}")
    return {"ms_bytes": os.path.getsize(stem + ".ms")}


def setup(w, threads, cache, fw):
    x, y = batch_arrays(w, np)
    if fw.startswith("todkit-eager"):
        import todkit as M

        M.set_seed(1)
        train_net = build_train_net(w)
        xt, yt = M.Tensor(x), M.Tensor(y)

        def eager_step():
            return float(train_net(xt, yt).asnumpy().reshape(-1)[0])
        return eager_step, {}

    from todkit import lite

    _, stem = _paths(w, cache)
    model = lite.Model()
    # The cell's thread count as a user sets it (Context.thread_num -> BLAS threads of a step).
    model.build_from_file(stem + ".ms", lite.ModelType.MINDIR_LITE, lite.Context(threads),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    if x.ndim == 4 and list(data.shape) == [x.shape[0], *x.shape[2:], x.shape[1]]:
        x = x.transpose(0, 2, 3, 1)  # the converter's NHWC input (a view: copied once, below)
    data.set_data_from_numpy(x)
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    session = model.session
    loss_arr = session.array(session.outputs(True)[0])

    def step():
        model.run_step()
        return loss_arr.reshape(-1)[0]
    return step, {"arena_mb": session.arena.nbytes / 2**20,
                  "state_mb": sum(v.data.nbytes for v in session.graph.consts) / 2**20
                  if hasattr(session.graph, "consts") else None}
