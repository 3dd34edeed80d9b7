"""The model zoo: parameter names, shapes and counts as MindSpore's model zoo has them (the
published totals: ResNet50 25,557,032 and ResNet18 11,689,512 trainable weights with 1000
classes, MobileNetV2 1.0 3,504,872), and each model exported, converted and trained one step
on the device runtime at a small input size (ResNet18's nn.Pad is a Pad node, its gradient a
Slice; GoogleNet's Inception blocks Concat, their gradients SplitWithSize)."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from todkit import models, nn


def trainable_count(net) -> int:
    return sum(p.size for p in net.trainable_params())


def names_and_shapes(net) -> dict[str, tuple[int, ...]]:
    return {p.name: p.shape for p in net.get_parameters()}


def test_lenet5_parameters():
    net = models.LeNet5()
    assert names_and_shapes(net) == {
        "conv1.weight": (6, 1, 5, 5), "conv2.weight": (16, 6, 5, 5),
        "fc1.weight": (120, 400), "fc1.bias": (120,), "fc2.weight": (84, 120),
        "fc2.bias": (84,), "fc3.weight": (10, 84), "fc3.bias": (10,)}


def test_resnet50_has_the_published_size_and_mindspore_names():
    net = models.ResNet50(1000)
    assert trainable_count(net) == 25_557_032
    shapes = names_and_shapes(net)
    assert len(shapes) == 267 and len(net.trainable_params()) == 161
    assert shapes["conv1.weight"] == (64, 3, 7, 7)
    assert shapes["layer1.0.down_sample_layer.0.weight"] == (256, 64, 1, 1)
    assert shapes["layer4.2.bn3.moving_variance"] == (2048,)
    assert shapes["end_point.weight"] == (1000, 2048)
    assert not net.layer1[0].bn1.moving_mean.requires_grad


def test_resnet18_has_the_published_size_and_mindspore_names():
    net = models.ResNet18(1000)
    assert trainable_count(net) == 11_689_512
    shapes = names_and_shapes(net)
    assert shapes["layer2.0.bn1d.gamma"] == (128,) and shapes["layer2.0.conv2.weight"] == (
        128, 128, 3, 3)
    assert shapes["layer2.0.down_sample_layer.1.moving_mean"] == (128,)
    assert net.conv1.pad_mode == "pad" and net.bn1.eps == 1e-5


def test_mobilenetv2_width_multiplier():
    net = models.MobileNetV2(1000)
    assert trainable_count(net) == 3_504_872
    shapes = names_and_shapes(net)
    assert shapes["features.0.features.0.weight"] == (32, 3, 3, 3)
    assert shapes["features.2.conv.1.features.0.weight"] == (96, 1, 3, 3)  # depthwise, 16 x 6
    assert shapes["features.3.conv.1.features.0.weight"] == (144, 1, 3, 3)  # 24 x 6
    assert shapes["dense.weight"] == (1000, 1280)
    half = names_and_shapes(models.MobileNetV2(10, width_mult=0.5))
    assert half["features.0.features.0.weight"] == (16, 3, 3, 3)
    assert half["dense.weight"] == (10, 1280)  # the last channel never shrinks below 1280


def test_googlenet_parameters_and_classifier():
    net = models.GoogleNet(num_classes=10)
    shapes = names_and_shapes(net)
    assert sum(int(np.prod(s)) for s in shapes.values()) == 5_624_714
    assert trainable_count(net) == 5_610_154
    assert shapes["block3a.b2.1.conv.weight"] == (128, 96, 3, 3)
    assert shapes["block5b.b4.bn.moving_mean"] == (128,)
    assert [p.name for p in net.classifier.trainable_params()] == ["classifier.weight",
                                                                   "classifier.bias"]


# -- export, convert, one train step on the device ---------------------------------------
ZOO = {
    # name: (builder, input shape, classes, ops the converted train model must hold)
    "lenet5": (lambda: models.LeNet5(num_class=4), (2, 1, 32, 32), 4, ()),
    "resnet50": (lambda: models.ResNet50(4), (2, 3, 32, 32), 4, ("FusedBatchNorm",)),
    "resnet18": (lambda: models.ResNet18(4), (2, 3, 32, 32), 4, ("PadFusion", "SliceFusion")),
    "mobilenetv2": (lambda: models.MobileNetV2(4, width_mult=0.35), (2, 3, 32, 32), 4,
                    ("ReduceFusion",)),
    "googlenet": (lambda: models.GoogleNet(4), (2, 3, 64, 64), 4, ("Concat", "Split")),
}


@pytest.mark.parametrize("name", sorted(ZOO))
def test_zoo_model_exports_converts_and_trains(name, tmp_path):
    from todkit import lite
    from todkit.converter.convert import convert

    build, shape, classes, members = ZOO[name]
    M.set_seed(0)
    net = build()
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
    train = nn.TrainOneStepCell(loss_net, nn.Momentum(net.trainable_params(), 0.01, 0.9))
    train.set_train()
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = np.arange(shape[0], dtype=np.int32) % classes
    path = M.export(train, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / name),
                    file_format="MINDIR")
    ms_path = convert(path, str(tmp_path / name), train_model=True)
    from todkit.formats.ms import read as read_ms
    from todkit.formats.ms.optable import BY_IR
    written = {BY_IR[n.op].ms for n in read_ms(ms_path).graph.nodes}
    assert set(members) <= written, sorted(written)
    model = lite.Model()
    model.build_from_file(ms_path, lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    inputs = model.get_inputs()
    data = x.transpose(0, 2, 3, 1) if tuple(inputs[0].shape) != shape else x
    inputs[0].set_data_from_numpy(np.ascontiguousarray(data))
    inputs[1].set_data_from_numpy(y)
    model.set_train_mode(True)
    model.run_step()
    loss = float(model.get_outputs()[0].get_data_to_numpy())
    assert np.isfinite(loss) and loss > 0
