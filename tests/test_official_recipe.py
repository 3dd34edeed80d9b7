"""MindSpore Lite's official ToD LeNet recipe (examples/train_lenet: lenet_export.py with its
train_utils.train_wrap), written with todkit's imports in place of mindspore's: it exports,
converts to a .ms with the same ops as the real converter's lenet_tod.ms, and trains."""

from __future__ import annotations

import numpy as np
import pytest

import todkit.common.dtype as mstype
import todkit.nn as nn
from tests.shared_paths import LITE
from todkit import Tensor, amp, context, lite
from todkit.common.parameter import ParameterTuple
from todkit.converter.convert import convert
from todkit.formats import ms
from todkit.models import LeNet5
from todkit.train.serialization import export


def train_wrap(net, loss_fn=None, optimizer=None, weights=None, loss_scale_manager=None):
    """The recipe's helper, call for call."""
    if loss_fn is None:
        loss_fn = nn.SoftmaxCrossEntropyWithLogits(reduction="mean", sparse=True)
    loss_net = nn.WithLossCell(net, loss_fn)
    loss_net.set_train()
    if weights is None:
        weights = ParameterTuple(net.trainable_params())
    if optimizer is None:
        optimizer = nn.Adam(weights, learning_rate=0.003, beta1=0.9, beta2=0.999, eps=1e-5,
                            use_locking=False, use_nesterov=False, weight_decay=4e-5,
                            loss_scale=1.0)
    if loss_scale_manager is None:
        return nn.TrainOneStepCell(loss_net, optimizer)
    return amp.build_train_network(net, optimizer, loss_fn, level="O2",
                                   loss_scale_manager=loss_scale_manager)


def test_lenet_recipe_exports_converts_and_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    n = LeNet5()
    n.set_train()
    context.set_context(mode=context.GRAPH_MODE, device_target="CPU")
    batch = 8
    x = Tensor(np.ones((batch, 1, 32, 32)), mstype.float32)
    label = Tensor(np.zeros([batch]).astype(np.int32))
    export(train_wrap(n), x, label, file_name="lenet_tod", file_format="MINDIR")
    path = convert("lenet_tod.mindir", "lenet_tod", train_model=True)

    ours = ms.read(path).graph
    real = LITE / "lenet_tod.ms"
    if real.exists():  # the real converter's file of the same recipe (batch 32)
        assert ours.op_counts() == ms.read(str(real)).graph.op_counts()

    model = lite.Model()
    model.build_from_file(path, lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, labels = model.get_inputs()
    assert tuple(data.shape) == (batch, 32, 32, 1)  # NHWC, as MindSpore Lite's
    rng = np.random.default_rng(0)
    xs = rng.random((batch, 32, 32, 1), dtype=np.float32)
    ys = rng.integers(0, 10, batch).astype(np.int32)
    data.set_data_from_numpy(xs)
    labels.set_data_from_numpy(ys)
    model.set_train_mode(True)
    losses = []
    for _ in range(8):
        model.run_step()
        losses.append(float(model.get_outputs()[0].get_data_to_numpy().reshape(-1)[0]))
    assert losses[-1] < losses[0]


def test_float16_amp_levels_are_refused_by_name():
    from todkit.core.errors import NotSupportedError

    net = LeNet5()
    opt = nn.Momentum(net.trainable_params(), 0.01, 0.9)
    with pytest.raises(NotSupportedError, match="'O2'"):
        train_wrap(net, optimizer=opt, loss_scale_manager=amp.FixedLossScaleManager(
            1024.0, drop_overflow_update=False))
    wrapped = amp.build_train_network(net, opt, nn.SoftmaxCrossEntropyWithLogits(
        sparse=True, reduction="mean"), level="O0")
    assert isinstance(wrapped, nn.TrainOneStepCell)
