"""Optimizer parameter groups and per-step learning rates as MindSpore accepts them, and the
losses of issue 4 against NumPy."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from todkit import nn
from todkit.opset.registry import OPS


def two_layer_net():
    M.set_seed(3)
    return nn.SequentialCell([nn.Dense(4, 3), nn.ReLU(), nn.Dense(3, 2)])


def data():
    rng = np.random.default_rng(1)
    return (M.Tensor(rng.standard_normal((6, 4)).astype(np.float32)),
            M.Tensor(np.array([0, 1, 1, 0, 1, 0], np.int32)))


def step(net, opt):
    loss = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    train = nn.TrainOneStepCell(loss, opt)
    x, y = data()
    return train, float(train(x, y).asnumpy())


def test_group_learning_rates_and_weight_decay():
    """Group 0 (first Dense) with its own lr and weight decay; group 1 the default lr. One
    SGD step must equal plain SGD with the per-group rate (the grads are the same)."""
    net = two_layer_net()
    first, second = net[0].trainable_params(), net[2].trainable_params()
    before = {p.name: p.asnumpy() for p in net.get_parameters()}
    ref_net = two_layer_net()
    _ref_train, _ = step(ref_net, nn.SGD(ref_net.trainable_params(), 1.0))
    # With lr 1 the change of the reference net is minus the gradient.
    grads = {p.name: before[p.name] - p.asnumpy() for p in ref_net.get_parameters()}
    opt = nn.SGD([{"params": first, "lr": 0.5, "weight_decay": 0.1}, {"params": second}],
                 learning_rate=0.1)
    names = {p.name for p in opt.get_parameters()}
    assert "learning_rate_group_0" in names and "learning_rate" in names
    step(net, opt)
    for p in net.get_parameters():
        lr, wd = (0.5, 0.1) if p.name.startswith("0.") else (0.1, 0.0)
        want = before[p.name] - lr * (grads[p.name] + wd * before[p.name])
        np.testing.assert_allclose(p.asnumpy(), want, rtol=1e-5, atol=1e-6, err_msg=p.name)


def test_group_errors_and_order_params():
    net = two_layer_net()
    a, b = net[0].trainable_params(), net[2].trainable_params()
    with pytest.raises(KeyError, match="momentum"):
        nn.Momentum([{"params": a, "momentum": 0.5}], 0.1, 0.9)
    with pytest.raises(RuntimeError, match="two groups"):
        nn.Adam([{"params": a}, {"params": a}])
    opt = nn.Adam([{"params": b}, {"params": a}, {"order_params": a + b}])
    assert [p.name for p in opt.parameters] == [p.name for p in a + b]


def test_per_step_learning_rate_is_a_parameter_table():
    net = two_layer_net()
    opt = nn.Momentum(net.trainable_params(), [0.1, 0.05, 0.01], 0.9)
    assert opt.dynamic_lr and opt.learning_rate.shape == (3,)
    assert opt.learning_rate.name == "learning_rate"
    if "Gather" not in OPS:
        with pytest.raises(Exception, match="Gather"):
            step(net, opt)
        return
    _train, _ = step(net, opt)
    assert int(opt.global_step.asnumpy()[0]) == 1


def test_adam_weight_decay_state_names():
    net = two_layer_net()
    opt = nn.AdamWeightDecay(net.trainable_params(), 1e-3, weight_decay=0.01)
    names = {p.name for p in opt.get_parameters()}
    assert {"adam_m.0.weight", "adam_v.2.bias", "learning_rate", "global_step"} <= names
    if "AdamWeightDecay" not in OPS:
        with pytest.raises(Exception, match="AdamWeightDecay"):
            step(net, opt)
        return
    before = net[0].weight.asnumpy()
    step(net, opt)
    assert not np.array_equal(before, net[0].weight.asnumpy())


L = np.array([[0.2, -1.5, 3.0], [1.0, 0.5, -0.3]], np.float32)
T = np.array([[0.0, -1.0, 1.0], [1.5, 0.5, 0.0]], np.float32)
P01 = 1 / (1 + np.exp(-L))
T01 = (T > 0).astype(np.float32)
SIG = P01
W = np.array([[1.0, 0.5, 2.0], [0.0, 1.0, 3.0]], np.float32)
PW = np.array([2.0, 0.5, 1.0], np.float32)
LOSSES = [
    (lambda: nn.MSELoss(), ("Square",), L, T, ((L - T) ** 2).mean()),
    (lambda: nn.L1Loss(reduction="sum"), ("Abs",), L, T, np.abs(L - T).sum()),
    (lambda: nn.SmoothL1Loss(), ("SmoothL1Loss",), L, T,
     np.where(np.abs(L - T) < 1, 0.5 * (L - T) ** 2, np.abs(L - T) - 0.5)),
    (lambda: nn.BCELoss(), ("BinaryCrossEntropy",), P01, T01,
     -(T01 * np.log(P01) + (1 - T01) * np.log(1 - P01)).mean()),
    (lambda: nn.BCEWithLogitsLoss(), ("SigmoidCrossEntropyWithLogits",), L, T01,
     -(T01 * np.log(SIG) + (1 - T01) * np.log(1 - SIG)).mean()),
    (lambda: nn.BCEWithLogitsLoss(reduction="sum", weight=M.Tensor(W), pos_weight=M.Tensor(PW)),
     ("Maximum",), L, T01, -(W * (PW * T01 * np.log(SIG) + (1 - T01) * np.log(1 - SIG))).sum()),
    (lambda: nn.NLLLoss(), ("NLLLoss",), np.log(P01 / P01.sum(1, keepdims=True)),
     np.array([2, 0], np.int32),
     -np.log(P01 / P01.sum(1, keepdims=True))[[0, 1], [2, 0]].mean()),
]


@pytest.mark.parametrize("make,ops,logits,labels,want", LOSSES,
                         ids=["mse", "l1", "smooth_l1", "bce", "bce_logits", "bce_logits_weights",
                              "nll"])
def test_losses(make, ops, logits, labels, want):
    missing = [o for o in ops if o not in OPS]
    if missing:
        pytest.skip(f"needs op(s) {missing}, not in the opset yet")
    got = make()(M.Tensor(logits), M.Tensor(labels)).asnumpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_loss_reduction_is_checked():
    with pytest.raises(ValueError, match="MSELoss: reduction"):
        nn.MSELoss(reduction="avg")


def test_per_step_learning_rate_trains_alike_eagerly_and_on_the_device(tmp_path):
    """``learning_rate=[...]``: Gather(learning_rate, global_step, 0) then Reshape, as
    MindSpore 2.10 exports it; the converted model walks the table step by step as eager
    training does."""
    from todkit import lite
    from todkit.converter.convert import convert
    from todkit.formats import mindir

    rates = [0.5, 0.1, 0.02]
    x = np.random.default_rng(0).standard_normal((4, 3)).astype(np.float32)
    y = np.array([0, 1, 1, 0], np.int32)

    def build():
        M.set_seed(3)
        net = nn.Dense(3, 2)
        loss = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
        return net, nn.TrainOneStepCell(loss, nn.Momentum(net.trainable_params(), rates, 0.9))

    net, train = build()
    path = M.export(train, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / "lr"),
                    file_format="MINDIR")
    gathers = [n for n in mindir.read(path).nodes if n.op == "Gather"]
    assert len(gathers) == 1 and gathers[0].inputs[0].type.shape == (3,)
    model = lite.Model()
    model.build_from_file(convert(path, str(tmp_path / "lr"), train_model=True),
                          lite.ModelType.MINDIR_LITE, lite.Context(), train_cfg=lite.TrainCfg())
    inputs = model.get_inputs()
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(y)
    model.set_train_mode(True)
    for _ in rates:
        model.run_step()
    device = {v.name: model.session.array(v) for v in model.session.trainable_params()}

    net, train = build()
    train.set_train()
    for _ in rates:
        train(M.Tensor(x), M.Tensor(y))
    assert {"bias", "weight"} <= set(device)
    np.testing.assert_allclose(device["weight"], net.weight.asnumpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(device["bias"], net.bias.asnumpy(), rtol=1e-5, atol=1e-6)
    # The table was walked: a fixed first rate ends elsewhere.
    rates[1:] = [rates[0]] * 2
    net, train = build()
    for _ in rates:
        train(M.Tensor(x), M.Tensor(y))
    assert not np.allclose(device["weight"], net.weight.asnumpy(), rtol=1e-3)
