"""A front-end network trained on the device path, for tests: export the training graph
(Momentum, sparse softmax cross entropy), convert it with ``--trainModel=true`` and load the
``.ms`` with ``todkit.lite`` fed with the NCHW batch in the converter's NHWC layout."""

from __future__ import annotations

import numpy as np

from todkit import lite, nn


def export_converted(tmp_path, net, x, y, lr=0.05, name="m") -> str:
    """The converted ``.ms`` of ``net`` trained by Momentum(lr, 0.9) on (x, y): its path."""
    import todkit as M
    from todkit.converter.convert import convert

    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss),
                                    nn.Momentum(net.trainable_params(), lr, 0.9))
    M.export(train_net, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / name))
    convert(str(tmp_path / f"{name}.mindir"), str(tmp_path / name), train_model=True)
    return str(tmp_path / f"{name}.ms")


def device_model(path, x, y, threads=1) -> lite.Model:
    """``path`` loaded for training at ``threads`` threads with (x, y) as its inputs."""
    model = lite.Model()
    model.build_from_file(path, lite.ModelType.MINDIR_LITE, lite.Context(thread_num=threads),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    return model


def train_losses(model, steps) -> list[float]:
    """The loss of each of ``steps`` train steps."""
    loss_value = model.session.array(model.session.outputs(True)[0])
    losses = []
    for _ in range(steps):
        model.run_step()
        losses.append(float(loss_value.reshape(-1)[0]))
    return losses


def device_against_eager(train_net, x, y, tmp_path, name: str, steps: int = 3):
    """(device, eager): the losses (flattened per step) of ``steps`` steps of ``train_net``'s
    export, converted and trained on the device, and of as many eager steps of
    ``train_net`` itself, both from its current parameters and fed (x, y) as given."""
    import todkit as M
    from todkit.converter.convert import convert

    M.export(train_net, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / name),
             file_format="MINDIR")
    model = lite.Model()
    model.build_from_file(convert(str(tmp_path / f"{name}.mindir"), str(tmp_path / name), True),
                          lite.ModelType.MINDIR_LITE, lite.Context(), train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    # the converter makes a 4-D input NHWC
    data.set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4
                             and tuple(data.shape) != x.shape else x)
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    device = []
    for _ in range(steps):
        model.run_step()
        device.append(model.get_outputs()[0].get_data_to_numpy().reshape(-1).copy())
    eager = [np.asarray(train_net(M.Tensor(x), M.Tensor(y)).asnumpy()).reshape(-1)
             for _ in range(steps)]
    return np.concatenate(device), np.concatenate(eager)
