"""The train API beyond single steps: resize, kernel callbacks, the non-finite guard,
virtual batches against a large batch, the weight/state API's errors."""

from __future__ import annotations

import numpy as np
import pytest

from tests.lite_models import device_model, export_converted
from tests.test_runtime_graphs import BATCH, IN, OUT, batches, train_graph
from todkit import lite, nn
from todkit.core import dtypes
from todkit.core.errors import RET_INFER_ERR, InferShapeError, InputTensorError, ParamError
from todkit.ir.graph import TensorType
from todkit.runtime.session import Session


def feed(model, x, y):
    data, label = model.get_inputs()
    data.set_data_from_numpy(x)
    label.set_data_from_numpy(y)


def weight(model, name="fc.weight"):
    return model.session.graph.value(name).data.copy()


def big_batch(n, seed=1):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, IN)).astype(np.float32),
            rng.integers(0, OUT, n).astype(np.int32))


# -- resize ------------------------------------------------------------------------------
def test_resize_replans_and_trains_like_the_reference():
    model = lite.Model._from_graph(train_graph("momentum"))
    data, label = model.get_inputs()
    model.resize([data, label], [[6, IN], [6]])
    assert data.shape == [6, IN] and label.shape == [6]
    assert model.get_predictions()[0].shape == [6, OUT]
    x, y = big_batch(6)
    feed(model, x, y)
    model.run_step()
    ref = lite.Model._from_graph(train_graph("momentum"))
    # The same step by hand: the mean gradient over 6 rows equals the mean of the three
    # 2-row batch gradients, which accumulate_gradients gives us.
    acc = lite.Model._from_graph(train_graph("momentum"),
                                 lite.TrainCfg(accumulate_gradients=True))
    for k in range(3):
        feed(acc, x[2 * k:2 * k + 2], y[2 * k:2 * k + 2])
        acc.run_step()
    grads = acc.get_gradients()
    for g in grads:
        g.set_data_from_numpy(g.get_data_to_numpy() / 3)
    acc.apply_gradients(grads)
    np.testing.assert_allclose(weight(model), weight(acc), rtol=1e-5, atol=1e-7)
    assert not np.array_equal(weight(model), weight(ref))
    assert model.session.train.plan.overlaps() == []


def test_resize_errors_leave_the_model_usable():
    model = lite.Model._from_graph(train_graph("sgd"))
    data, label = model.get_inputs()
    with pytest.raises(ParamError, match="inputs0"):
        model.resize([data], [[4, IN, 1]])  # rank changes
    with pytest.raises(ParamError, match="2 inputs but 1 shapes"):
        model.resize([data, label], [[4, IN]])
    with pytest.raises(InferShapeError) as e:  # label batch disagrees with the data batch
        model.resize([data], [[4, IN]])
    assert e.value.code == RET_INFER_ERR and "batch size" in str(e.value)
    assert data.shape == [BATCH, IN]
    feed(model, *batches(1)[0])
    model.run_step()


def test_resize_fails_for_a_weight_that_fixes_the_batch():
    g = train_graph("sgd")
    # A constant of batch length (as the reduce-by-ones-vector gradients make) pins the batch.
    ones = g.add_const("ones_batch", np.ones((1, BATCH), np.float32))
    logits = g.node("Default/network-WithLossCell/_backbone-Tiny/fc-Dense/BiasAdd-op0").outputs[0]
    g.add_node("MatMul", [ones, logits], {"transpose_a": False, "transpose_b": False},
               [TensorType((1, OUT), dtypes.float32)], name="Default/colsum/MatMul-op9")
    model = lite.Model._from_graph(g)
    data, label = model.get_inputs()
    with pytest.raises(InferShapeError, match="colsum/MatMul-op9"):
        model.resize([data, label], [[4, IN], [4]])


# -- kernel callbacks --------------------------------------------------------------------
def test_kernel_callbacks_see_every_node_with_tensors():
    model = lite.Model._from_graph(train_graph("sgd"))
    feed(model, *batches(1)[0])
    seen = []

    def before(ins, outs, info):
        seen.append(("before", info.node_name, info.node_type, [t.name for t in ins]))

    def after(ins, outs, info):
        seen.append(("after", info.node_name, info.node_type, [t.shape for t in outs]))

    model.run_step(before, after)
    names = [n.name for n in model.session.train.nodes]
    assert [s[1] for s in seen if s[0] == "before"] == names
    assert [s[1] for s in seen if s[0] == "after"] == names
    assert seen[0] == ("before", names[0], "MatMul", ["inputs0", "fc.weight"])
    assert seen[1] == ("after", names[0], "MatMul", [[BATCH, OUT]])
    seen.clear()
    model.predict([batches(1)[0][0]], before_callback=before)
    assert [s[2] for s in seen] == ["MatMul", "BiasAdd"]


# -- non-finite loss or gradient ---------------------------------------------------------
@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_nan_step_is_skipped_by_default(opt):
    model = lite.Model._from_graph(train_graph(opt))
    x, y = batches(1)[0]
    feed(model, x, y)
    model.run_step()
    state = {c.name: c.data.copy() for c in model.session.graph.consts}
    bad = x.copy()
    bad[0, 0] = np.nan
    feed(model, bad, y)
    with pytest.warns(lite.NonFiniteWarning, match="skipped"):
        assert model.run_step() is False
    for c in model.session.graph.consts:  # weights, moments and beta powers untouched
        np.testing.assert_array_equal(c.data, state[c.name], err_msg=c.name)
    assert model.nonfinite_skipped_steps == 1
    feed(model, x, y)
    assert model.run_step() is True
    assert not np.array_equal(weight(model), state["fc.weight"])


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # the NaN fed in
def test_nan_step_can_be_an_error():
    model = lite.Model._from_graph(train_graph("adam"), lite.TrainCfg(nonfinite="raise"))
    x, y = batches(1)[0]
    feed(model, np.full_like(x, np.inf), y)
    w = weight(model)
    with pytest.raises(lite.NonFiniteError, match="NaN or Inf.*not updated"):
        model.run_step()
    np.testing.assert_array_equal(weight(model), w)


def test_wrong_input_shape_or_dtype_is_a_clear_error():
    model = lite.Model._from_graph(train_graph("sgd"))
    data, label = model.get_inputs()
    with pytest.raises(InputTensorError, match="inputs0.*shape"):
        data.set_data_from_numpy(np.zeros((BATCH, IN + 1), np.float32))
    with pytest.raises(InputTensorError, match="inputs1.*dtype int32"):
        label.set_data_from_numpy(np.zeros(BATCH, np.float32))


# -- virtual batch against one large batch -------------------------------------------------
@pytest.mark.parametrize("opt", ["momentum", "adam"])
def test_virtual_batch_matches_one_step_on_a_larger_batch(opt):
    n = 3
    x, y = big_batch(BATCH * n)
    graphs = [train_graph(opt), train_graph(opt)]
    if opt == "adam":  # eps makes Adam scale-dependent where sqrt(v) is as small as eps
        for g in graphs:
            g.value("Default/data-2").data[...] = 1e-12
    big, virtual = (lite.Model._from_graph(g) for g in graphs)
    big.resize(big.get_inputs(), [[BATCH * n, IN], [BATCH * n]])
    lr = virtual.get_learning_rate()
    # The loss is a batch mean, so N summed gradients are N times the large batch's mean
    # gradient: Momentum needs lr / N (Lite's default); Adam is scale-free and keeps lr.
    virtual.setup_virtual_batch(n, lr / n if opt == "momentum" else lr)
    for step in range(2):
        feed(big, x, y)
        big.run_step()
        for k in range(n):
            feed(virtual, x[k * BATCH:(k + 1) * BATCH], y[k * BATCH:(k + 1) * BATCH])
            virtual.run_step()
        # The weights and Adam's beta powers agree; optimizer moments hold sums (N times
        # the large batch's, N^2 for Adam's v), which is the same update.
        for name in ("fc.weight", "fc.bias", "beta1_power", "beta2_power"):
            if opt != "adam" and name.startswith("beta"):
                continue
            np.testing.assert_allclose(weight(virtual, name), weight(big, name), rtol=1e-5,
                                       atol=1e-7, err_msg=f"{name} step {step}")


# -- weight and state API errors ---------------------------------------------------------
def test_weight_api_error_paths():
    model = lite.Model._from_graph(train_graph("adam"), lite.TrainCfg(accumulate_gradients=True))
    w = lite.Tensor(np.zeros((OUT, IN), np.float32), name="fc.weight")
    with pytest.raises(ParamError, match="no such constant tensor 'nope'"):
        model.update_feature_maps([lite.Tensor(np.zeros(3, np.float32), name="nope")])
    with pytest.raises(ParamError, match="'fc.weight'.*12 elements.*got 5"):
        model.update_feature_maps([lite.Tensor(np.zeros(5, np.float32), name="fc.weight")])
    with pytest.raises(ParamError, match="'fc.weight'.*float32.*int32"):
        model.update_feature_maps([lite.Tensor(np.zeros((OUT, IN), np.int32), name="fc.weight")])
    model.update_feature_maps([w])
    assert not weight(model).any()
    with pytest.raises(ParamError, match="'nope'"):
        model.set_optimizer_params([lite.Tensor(np.zeros(1, np.float32), name="nope")])
    with pytest.raises(ParamError, match="'learning_rate'.*float"):
        model.set_optimizer_params([lite.Tensor(np.zeros(1, np.int32), name="learning_rate")])
    grads = model.get_gradients()
    assert [g.shape for g in grads] == [[OUT, IN], [OUT]]
    with pytest.raises(ParamError, match="'nope'"):
        model.apply_gradients([lite.Tensor(np.zeros(1, np.float32), name="nope")])
    g0 = grads[0]
    with pytest.raises(ParamError, match=f"{g0.name!r}.*12 elements.*got 3"):
        model.apply_gradients([lite.Tensor(np.zeros(3, np.float32), name=g0.name)])
    with pytest.raises(ParamError, match="float32.*float64"):
        model.apply_gradients([lite.Tensor(np.zeros((OUT, IN)), name=g0.name)])
    model.apply_gradients([lite.Tensor(np.ones((OUT, IN), np.float32), name=g0.name)])
    assert weight(model).any()  # the given gradient was applied


# -- virtual batch and BatchNorm momentum ------------------------------------------------------
class _BNNet(nn.Cell):
    """A trained BatchNorm (its gamma and beta in the optimizer) after a convolution."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, pad_mode="same")
        self.bn = nn.BatchNorm2d(4, momentum=0.9)  # MINDIR momentum 0.1
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 4 * 4, 3)

    def construct(self, x):
        return self.fc(self.flatten(self.bn(self.conv(x))))


def _bn_model(tmp_path):
    import todkit as M

    M.set_seed(4)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((4, 3, 4, 4)).astype(np.float32)
    y = rng.integers(0, 3, 4).astype(np.int32)
    return device_model(export_converted(tmp_path, _BNNet(), x, y, lr=0.01, name="bn"), x, y)


def _moving(model):
    names = [v.name for v in model.session.graph.values() if v.is_const
             and ("moving_mean" in v.name or "moving_variance" in v.name)]
    assert len(names) == 2, names
    return {n: weight(model, n).copy() for n in names}


def test_virtual_batch_sets_trainable_batch_norm_momentum_as_lite_does(tmp_path):
    """Lite 2.x's BatchnormCPUKernel::SetupVirtualBatch(int, int) takes the momentum (given,
    or the kernel's / multiplier) through an int: below 1 it is 0, and a trained BatchNorm's
    moving statistics hold still during the virtual batch; turning it off restores them."""
    model = _bn_model(tmp_path)
    before = _moving(model)
    model.setup_virtual_batch(2)  # default momentum: int(0.1 / 2) = 0
    for _ in range(4):
        model.run_step()
    for name, value in _moving(model).items():
        np.testing.assert_array_equal(value, before[name], err_msg=name)
    assert weight(model, "fc.weight") is not None
    model.setup_virtual_batch(2, momentum=0.5)  # int(0.5) = 0 as well
    model.run_step()
    np.testing.assert_array_equal(_moving(model)[next(iter(before))], before[next(iter(before))])
    model.setup_virtual_batch(2, momentum=1.0)  # 1: the moving statistics become the batch's
    model.run_step()
    batch_mean = model.session.train.array(next(
        n for n in model.session.train.nodes if n.op == "BatchNorm").outputs[3])
    mean_name = next(n for n in before if "moving_mean" in n)
    np.testing.assert_allclose(_moving(model)[mean_name], batch_mean, rtol=1e-6)
    model.setup_virtual_batch(1)  # off: the graph's momentum again
    frozen = _moving(model)
    model.run_step()
    moved = _moving(model)
    np.testing.assert_allclose(moved[mean_name], 0.9 * frozen[mean_name] + 0.1 * batch_mean,
                               rtol=1e-5, atol=1e-7)
    # The graph (and so an export) keeps its own momentum throughout.
    assert [n.attrs["momentum"] for n in model.session.graph.nodes
            if n.op == "BatchNorm"] == [pytest.approx(0.1)]


def test_virtual_batch_leaves_a_frozen_batch_norm_alone():
    from tests.test_perf_2t_parallel import frozen_net

    s = Session(frozen_net())
    s.setup_virtual_batch(4)
    assert s._trainable_batch_norms() == [] and s._bn_momentum == {}
    bn = [(ex, i) for ex in s.executors for i, n in enumerate(ex.nodes) if n.op == "BatchNorm"]
    assert bn and all(ex.bound[i][3]["momentum"] == ex.nodes[i].attrs["momentum"]
                      for ex, i in bn)


def test_resize_keeps_the_accumulated_gradients():
    """Gradients summed before a resize (a new batch size) are still there after it, as the
    optimizers' grad_sum buffers in Lite, which a resize does not touch."""
    model = lite.Model._from_graph(train_graph("momentum"),
                                   train_cfg=lite.TrainCfg(accumulate_gradients=True))
    x, y = big_batch(BATCH)
    feed(model, x, y)
    model.run_step()
    summed = {t.name: t.get_data_to_numpy() for t in model.get_gradients()}
    assert any(np.any(v != 0) for v in summed.values())
    model.resize(model.get_inputs(), [[2 * BATCH, IN], [2 * BATCH]])
    for t in model.get_gradients():
        np.testing.assert_array_equal(t.get_data_to_numpy(), summed[t.name], err_msg=t.name)
    x2, y2 = big_batch(2 * BATCH, seed=5)
    feed(model, x2, y2)
    model.run_step()  # the next step adds to them
    assert any(not np.array_equal(t.get_data_to_numpy(), summed[t.name])
               for t in model.get_gradients())
