"""The MindSpore-compatible front end: the seed example, names, initializers, eager training
steps against an independent NumPy re-implementation, and the exported graph's structure."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest

import todkit as M
from tests.seed_example import seed_source
from todkit.common.parameter import ParameterTuple
from todkit.frontend import export_graph
from todkit.ops import operations as P
from todkit.train.serialization import mindir_path


def make_mynet(c, h, w, classes):
    class MyNet(M.nn.Cell):
        def __init__(self, num_of_classes):
            super().__init__()
            self.fc = M.nn.Dense(c * h * w, num_of_classes)

        def construct(self, x):
            x = P.Reshape()(x, (-1, c * h * w))
            x = self.fc(x)
            return x

    return MyNet(classes)


def make_train_net(net, optimizer_factory, loss=None):
    loss_net = M.nn.WithLossCell(net, loss or M.nn.SoftmaxCrossEntropyWithLogits())
    return M.nn.TrainOneStepCell(loss_net, optimizer_factory(net))


def adam(net, **kw):
    return M.nn.Adam(ParameterTuple(net.trainable_params()), **kw)


def batch(n, c, h, w, classes, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, c, h, w)).astype(np.float32)
    labels = np.eye(classes, dtype=np.float32)[rng.integers(0, classes, n)]
    return x, labels


# -- independent NumPy reference: Reshape + Dense + dense CE (reduction none, sens 1) -------
def ref_grads(x, labels, W, b):
    xf = x.reshape(len(x), -1).astype(np.float64)
    logits = xf @ W.T + b
    z = logits - logits.max(axis=1, keepdims=True)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    loss = -(labels * np.log(p)).sum(axis=1)
    d = p - labels  # d(sum of per-sample losses) / d logits
    return loss, d.T @ xf, d.sum(axis=0)


def ref_adam(params, grads, state, lr, b1=0.9, b2=0.999, eps=1e-8, wd=0.0):
    state["t"] += 1
    b1p, b2p = b1 ** state["t"], b2 ** state["t"]
    for k in params:
        g = grads[k] + wd * params[k]
        m = state.setdefault(("m", k), np.zeros_like(params[k]))
        v = state.setdefault(("v", k), np.zeros_like(params[k]))
        m[...] = b1 * m + (1 - b1) * g
        v[...] = b2 * v + (1 - b2) * g * g
        params[k] = params[k] - lr * math.sqrt(1 - b2p) / (1 - b1p) * m / (np.sqrt(v) + eps)


def ref_momentum(params, grads, state, lr, mom):
    for k in params:
        a = state.setdefault(k, np.zeros_like(params[k]))
        a[...] = mom * a + grads[k]
        params[k] = params[k] - lr * a


def ref_sgd(params, grads, state, lr, mom, damp):
    for k in params:
        g = grads[k]
        if k not in state:
            state[k] = g.copy()
        elif mom > 0:
            state[k] = mom * state[k] + (1 - damp) * g
        params[k] = params[k] - lr * (state[k] if mom > 0 else g)


def run_against_reference(optimizer_factory, reference, steps=3, seed=3):
    M.set_seed(seed)
    n, c, h, w, k = 6, 2, 3, 4, 5
    net = make_mynet(c, h, w, k)
    train = make_train_net(net, optimizer_factory)
    params = {"W": net.fc.weight.asnumpy().astype(np.float64),
              "b": net.fc.bias.asnumpy().astype(np.float64)}
    state = {"t": 0}
    for step in range(steps):
        x, labels = batch(n, c, h, w, k, seed=step)
        loss, dW, db = ref_grads(x, labels, params["W"], params["b"])
        got = train(M.Tensor(x), M.Tensor(labels)).asnumpy()
        np.testing.assert_allclose(got, loss, rtol=1e-5, atol=1e-6)
        reference(params, {"W": dW, "b": db}, state)
    np.testing.assert_allclose(net.fc.weight.asnumpy(), params["W"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(net.fc.bias.asnumpy(), params["b"], rtol=1e-5, atol=1e-6)
    return train


# -- the seed example -----------------------------------------------------------------------


def _run_seed(tmp_path, monkeypatch, n, c, h, w):
    """Run the seed verbatim; the MINDIR writer is replaced by a recorder when the codec has
    not landed, so the graph it would write is still checked."""
    written = {}
    try:
        from todkit.formats import mindir

        if not hasattr(mindir, "write"):
            raise ImportError
        real_write = mindir.write
    except ImportError:
        import sys
        import types

        mindir = types.ModuleType("todkit.formats.mindir")
        monkeypatch.setitem(sys.modules, "todkit.formats.mindir", mindir)
        from todkit import formats

        monkeypatch.setattr(formats, "mindir", mindir, raising=False)
        real_write = None

    def write(graph, path):
        written["graph"], written["path"] = graph, path
        if real_write is not None:
            real_write(graph, path)

    monkeypatch.setattr(mindir, "write", write, raising=False)
    monkeypatch.chdir(tmp_path)
    scope: dict = {}
    exec(seed_source(n, c, h, w), scope)
    return scope, written


@pytest.mark.parametrize("shape", [(32, 3, 224, 224), (4, 3, 8, 8)])
def test_seed_example_verbatim(tmp_path, monkeypatch, shape):
    scope, written = _run_seed(tmp_path, monkeypatch, *shape)
    g = written["graph"]
    n, c, h, w = shape
    assert written["path"] == "my_net_tod.mindir"
    assert [v.name for v in g.inputs] == ["inputs0", "inputs1"]
    assert g.inputs[0].type.shape == (n, c, h, w) and g.inputs[1].type.shape == (n, 10)
    assert g.outputs[0].type.shape == (n,)  # reduction 'none': a per-sample loss
    assert g.attrs["training"] is True
    params = {v.name: v.type.shape for v in g.consts if v.param}
    assert params == {
        "fc.weight": (10, c * h * w), "fc.bias": (10,), "learning_rate": (),
        "global_step": (1,), "beta1_power": (), "beta2_power": (),
        "moment1.fc.weight": (10, c * h * w), "moment1.fc.bias": (10,),
        "moment2.fc.weight": (10, c * h * w), "moment2.fc.bias": (10,)}
    # The graph's weight constants are the Parameters' arrays (in-place training).
    weight = next(v for v in g.consts if v.name == "fc.weight")
    assert weight.data is scope["my_net"].fc.weight._data


def test_seed_graph_structure():
    M.set_seed(1)
    net = make_mynet(3, 8, 8, 10)
    train = make_train_net(net, lambda n: adam(n, learning_rate=1e-3))
    x, labels = batch(4, 3, 8, 8, 10)
    g = export_graph(train, M.Tensor(x), M.Tensor(labels))
    assert Counter(n.op for n in g.nodes) == Counter({
        "Reshape": 1, "MatMul": 2, "BiasAdd": 1, "SoftmaxCrossEntropyWithLogits": 1,
        "ExpandDims": 1, "Mul": 3, "BiasAddGrad": 1, "AssignAdd": 1, "Assign": 2, "Adam": 2})
    names = [n.name for n in g.nodes]
    fwd = "Default/network-WithLossCell/_backbone-MyNet"
    assert f"{fwd}/Reshape-op0" in names
    assert f"{fwd}/fc-Dense/MatMul-op0" in names
    assert f"{fwd}/fc-Dense/BiasAdd-op0" in names
    loss_scope = "Default/network-WithLossCell/_loss_fn-SoftmaxCrossEntropyWithLogits"
    assert f"{loss_scope}/SoftmaxCrossEntropyWithLogits-op0" in names
    assert f"Gradients/{fwd}/fc-Dense/Grad_MatMul/MatMul-op0" in names
    assert ["Default/optimizer-Adam/Adam-op0", "Default/optimizer-Adam/Adam-op1"] == [
        n for n in names if n.endswith(tuple(f"Adam-op{k}" for k in range(9)))]
    adam0 = g.node("Default/optimizer-Adam/Adam-op0")
    assert [v.name for v in adam0.inputs[:3]] == ["fc.weight", "moment1.fc.weight",
                                                  "moment2.fc.weight"]
    assert adam0.inputs[3].producer.op == "Mul"  # the already advanced beta1 power
    assert [v.name for v in adam0.inputs[5:9]] == ["learning_rate", "beta1", "beta2", "eps"]
    # Order: the step counter and the beta powers are advanced before the first Adam op.
    ops = [n.op for n in g.nodes]
    assert ops.index("AssignAdd") < ops.index("Assign") < ops.index("Adam")
    step = g.node("Default/optimizer-Adam/AssignAdd-op0")
    assert step.inputs[0].name == "global_step" and step.inputs[0].type.dtype == M.int32


def test_adam_weight_decay_nodes():
    net = make_mynet(1, 2, 2, 3)
    train = make_train_net(net, lambda n: adam(n, learning_rate=3e-3, eps=1e-5,
                                               weight_decay=4e-5))
    x, labels = batch(2, 1, 2, 2, 3)
    g = export_graph(train, M.Tensor(x), M.Tensor(labels))
    opt = [n for n in g.nodes if n.name.startswith("Default/optimizer-Adam/")]
    assert [n.name.rsplit("/", 1)[1] for n in opt] == [
        "AssignAdd-op0", "Mul-op0", "Assign-op0", "Mul-op1", "Assign-op1",
        "Mul-op2", "AddN-op0", "Adam-op0", "Mul-op3", "AddN-op1", "Adam-op1"]
    assert g.node("Default/optimizer-Adam/Mul-op2").inputs[0].name == "fc.weight"
    assert g.node("Default/optimizer-Adam/Adam-op0").inputs[9].producer.op == "AddN"


# -- names, shapes and initializers ----------------------------------------------------------
class LeNet5(M.nn.Cell):
    """MindSpore model-zoo LeNet5."""

    def __init__(self, num_class=10, num_channel=1):
        super().__init__()
        self.conv1 = M.nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = M.nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.fc1 = M.nn.Dense(16 * 5 * 5, 120)
        self.fc2 = M.nn.Dense(120, 84)
        self.fc3 = M.nn.Dense(84, num_class)
        self.relu = M.nn.ReLU()
        self.max_pool2d = M.nn.MaxPool2d(kernel_size=2, stride=2)
        self.flatten = M.nn.Flatten()

    def construct(self, x):
        x = self.max_pool2d(self.relu(self.conv1(x)))
        x = self.max_pool2d(self.relu(self.conv2(x)))
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        return self.fc3(x)


def test_lenet5_parameter_names_and_shapes():
    net = LeNet5()
    assert [(p.name, p.shape) for p in net.trainable_params()] == [
        ("conv1.weight", (6, 1, 5, 5)), ("conv2.weight", (16, 6, 5, 5)),
        ("fc1.weight", (120, 400)), ("fc1.bias", (120,)), ("fc2.weight", (84, 120)),
        ("fc2.bias", (84,)), ("fc3.weight", (10, 84)), ("fc3.bias", (10,))]
    assert [name for name, _ in net.cells_and_names()] == [
        "", "conv1", "conv2", "fc1", "fc2", "fc3", "relu", "max_pool2d", "flatten"]
    assert [name for name, _ in net.parameters_and_names()][:2] == ["conv1.weight",
                                                                      "conv2.weight"]


def test_nested_names_and_sequential():
    class Net(M.nn.Cell):
        def __init__(self):
            super().__init__()
            self.features = M.nn.SequentialCell([M.nn.Dense(4, 3), M.nn.ReLU()])
            self.heads = M.nn.CellList([M.nn.Dense(3, 2)])

        def construct(self, x):
            return self.heads[0](self.features(x))

    net = Net()
    assert [p.name for p in net.get_parameters()] == [
        "features.0.weight", "features.0.bias", "heads.0.weight", "heads.0.bias"]
    g = export_graph(net, M.Tensor(np.ones((2, 4), np.float32)))
    assert [v.name for v in g.inputs] == ["x"] and g.attrs["training"] is False
    assert [n.name for n in g.nodes] == [
        "Default/features-SequentialCell/0-Dense/MatMul-op0",
        "Default/features-SequentialCell/0-Dense/BiasAdd-op0",
        "Default/features-SequentialCell/1-ReLU/ReLU-op0",
        "Default/heads-CellList/0-Dense/MatMul-op0",
        "Default/heads-CellList/0-Dense/BiasAdd-op0"]


def test_initializer_bounds():
    M.set_seed(0)
    d = M.nn.Dense(400, 300)
    bound = 1 / math.sqrt(400)  # HeUniform(sqrt(5)) on fan_in and U(1/sqrt(fan_in))
    wt, b = d.weight.asnumpy(), d.bias.asnumpy()
    assert wt.dtype == np.float32 and np.abs(wt).max() <= bound
    assert np.abs(wt).max() > 0.98 * bound and abs(wt.mean()) < 0.02 * bound
    assert np.isclose(wt.std(), bound / math.sqrt(3), rtol=0.02)  # uniform variance
    assert np.abs(b).max() <= bound and np.abs(b).max() > 0.9 * bound
    conv = M.nn.Conv2d(6, 16, 5, has_bias=True)
    cb = 1 / math.sqrt(6 * 25)
    assert np.abs(conv.weight.asnumpy()).max() <= cb and np.abs(conv.bias.asnumpy()).max() <= cb
    assert M.nn.Conv2d(6, 16, 5).has_bias is False


def test_set_seed_reproducible():
    M.set_seed(7)
    a = M.nn.Dense(5, 4).weight.asnumpy()
    M.set_seed(7)
    assert np.array_equal(a, M.nn.Dense(5, 4).weight.asnumpy())


def test_optimizer_state_names():
    net = make_mynet(1, 2, 2, 3)
    mom = M.nn.Momentum(net.trainable_params(), 0.01, 0.9)
    assert sorted(p.name for p in mom.get_parameters()) == sorted([
        "fc.weight", "fc.bias", "learning_rate", "global_step", "momentum",
        "moments.fc.weight", "moments.fc.bias"])
    sgd = M.nn.SGD(net.trainable_params(), 0.01)
    names = {p.name: p for p in sgd.get_parameters()}
    assert {"accum.fc.weight", "stat.fc.bias", "momentum", "learning_rate"} <= set(names)
    assert np.all(names["stat.fc.weight"].asnumpy() == 1)
    assert names["global_step"].asnumpy().dtype == np.int32 and names["global_step"].shape == (1,)


# -- eager execution ---------------------------------------------------------------------------
def test_plain_cell_runs_eagerly():
    net = make_mynet(2, 2, 2, 3)
    x = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2)
    out = net(M.Tensor(x)).asnumpy()
    ref = x.reshape(2, -1) @ net.fc.weight.asnumpy().T + net.fc.bias.asnumpy()
    np.testing.assert_allclose(out, ref, rtol=1e-6)


def test_tensor_operators():
    a = M.Tensor(np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    b = M.Tensor(np.array([[0.5, 1.0], [2.0, 1.0]], np.float32))
    np.testing.assert_allclose((a + b).asnumpy(), a.asnumpy() + b.asnumpy())
    np.testing.assert_allclose((a - 1).asnumpy(), a.asnumpy() - 1)
    np.testing.assert_allclose((2 * a).asnumpy(), 2 * a.asnumpy())
    np.testing.assert_allclose((a / b).asnumpy(), a.asnumpy() / b.asnumpy())
    np.testing.assert_allclose((a @ b).asnumpy(), a.asnumpy() @ b.asnumpy())
    assert (a * 2).dtype == M.float32 and a.shape == (2, 2)


def test_adam_steps_match_numpy():
    run_against_reference(lambda n: adam(n, learning_rate=1e-2),
                          lambda p, g, s: ref_adam(p, g, s, 1e-2))


def test_adam_weight_decay_steps_match_numpy():
    run_against_reference(lambda n: adam(n, learning_rate=1e-2, eps=1e-5, weight_decay=0.1),
                          lambda p, g, s: ref_adam(p, g, s, 1e-2, eps=1e-5, wd=0.1))


def test_momentum_steps_match_numpy():
    run_against_reference(lambda n: M.nn.Momentum(n.trainable_params(), 0.01, 0.9),
                          lambda p, g, s: ref_momentum(p, g, s, 0.01, 0.9))


def test_sgd_steps_match_numpy():
    run_against_reference(lambda n: M.nn.SGD(n.trainable_params(), 0.02, 0.9, 0.1),
                          lambda p, g, s: ref_sgd(p, g, s, 0.02, 0.9, 0.1))


def test_adam_state_advances():
    train = run_against_reference(lambda n: adam(n, learning_rate=1e-2),
                                  lambda p, g, s: ref_adam(p, g, s, 1e-2), steps=2)
    opt = train.optimizer
    assert opt.global_step.asnumpy().tolist() == [2]
    np.testing.assert_allclose(opt.beta1_power.asnumpy(), 0.9**2, rtol=1e-6)
    np.testing.assert_allclose(opt.beta2_power.asnumpy(), 0.999**2, rtol=1e-6)


def test_loss_falls_on_learnable_batch():
    M.set_seed(0)
    net = make_mynet(1, 4, 4, 3)
    train = make_train_net(net, lambda n: adam(n, learning_rate=0.05),
                           M.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    rng = np.random.default_rng(1)
    x = M.Tensor(rng.normal(size=(8, 1, 4, 4)).astype(np.float32))
    y = M.Tensor(rng.integers(0, 3, 8).astype(np.int32))
    losses = [float(train(x, y).asnumpy()) for _ in range(30)]
    assert losses[-1] < 0.3 * losses[0]


def test_frozen_layer_gets_no_backward_nodes():
    class TwoLayer(M.nn.Cell):
        def __init__(self):
            super().__init__()
            self.frozen = M.nn.Dense(4, 5, activation="relu")
            self.head = M.nn.Dense(5, 3)

        def construct(self, x):
            return self.head(self.frozen(x))

    net = TwoLayer()
    train = make_train_net(net, lambda n: M.nn.Momentum(n.head.trainable_params(), 0.1, 0.9))
    x, labels = np.ones((2, 4), np.float32), np.eye(3, dtype=np.float32)[[0, 1]]
    g = export_graph(train, M.Tensor(x), M.Tensor(labels))
    grads = [n.name for n in g.nodes if n.name.startswith("Gradients/")]
    assert grads and not any("frozen-Dense" in name for name in grads)
    updated = [n.inputs[0].name for n in g.nodes if n.op == "ApplyMomentum"]
    assert updated == ["head.weight", "head.bias"]
    before = net.frozen.weight.asnumpy()
    train(M.Tensor(x), M.Tensor(labels))
    assert np.array_equal(before, net.frozen.weight.asnumpy())


def test_lenet5_train_step_runs():
    from todkit.opset.registry import OPS

    if not {"Conv2D", "MaxPool"} <= set(OPS):
        pytest.skip("Conv2D / MaxPool have not landed in todkit.opset yet")
    M.set_seed(0)
    net = LeNet5()
    train = make_train_net(net, lambda n: adam(n, learning_rate=3e-3),
                           M.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean"))
    x = M.Tensor(np.random.default_rng(0).normal(size=(4, 1, 32, 32)).astype(np.float32))
    y = M.Tensor(np.array([0, 1, 2, 3], np.int32))
    g = export_graph(train, x, y)
    ops = Counter(n.op for n in g.nodes)
    assert ops["Conv2DBackpropInput"] == 1 and ops["Adam"] == 8
    l0 = float(train(x, y).asnumpy())
    for _ in range(5):
        loss = float(train(x, y).asnumpy())
    assert loss < l0


# -- export -----------------------------------------------------------------------------------
def test_mindir_suffix_rule():
    assert mindir_path("my_net_tod.mindir") == "my_net_tod.mindir"
    assert mindir_path("lenet_tod") == "lenet_tod.mindir"
    assert mindir_path("a.onnx") == "a.onnx.mindir"


def test_export_rejects_other_formats():
    net = make_mynet(1, 2, 2, 3)
    with pytest.raises(Exception, match="MINDIR"):
        M.export(net, M.Tensor(np.ones((1, 1, 2, 2), np.float32)), file_name="a",
                 file_format="ONNX")


def test_sparse_loss_without_mean_one_hots_the_labels():
    """MindSpore one-hots sparse labels unless reduction is 'mean' (OneHot, then the dense op)."""
    from todkit.opset.registry import OPS

    loss = M.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="sum")
    logits = M.Tensor(np.array([[1.0, 2.0, 0.5], [0.0, 0.0, 3.0]], np.float32))
    labels = M.Tensor(np.array([1, 2], np.int32))
    if "OneHot" not in OPS:
        with pytest.raises(Exception, match="OneHot"):
            loss(logits, labels)
        return
    z = logits.asnumpy() - logits.asnumpy().max(1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(1, keepdims=True))
    assert np.isclose(float(loss(logits, labels).asnumpy()), -(logp[0, 1] + logp[1, 2]),
                      rtol=1e-5)


# -- more optimizer and loss variants against the NumPy reference -------------------------------
def test_sgd_without_momentum_matches_numpy():
    run_against_reference(lambda n: M.nn.SGD(n.trainable_params(), 0.05),
                          lambda p, g, s: ref_sgd(p, g, s, 0.05, 0.0, 0.0))


def test_loss_scale_and_sens_cancel():
    """TrainOneStepCell(sens=s) with Adam(loss_scale=s) trains as the unscaled pair."""
    def scaled(net):
        loss_net = M.nn.WithLossCell(net, M.nn.SoftmaxCrossEntropyWithLogits())
        return M.nn.TrainOneStepCell(loss_net, adam(net, learning_rate=1e-2, loss_scale=4.0),
                                     sens=4.0)

    M.set_seed(5)
    a = make_mynet(1, 2, 2, 3)
    M.set_seed(5)
    b = make_mynet(1, 2, 2, 3)
    ta, tb = scaled(a), make_train_net(b, lambda n: adam(n, learning_rate=1e-2))
    x, labels = batch(4, 1, 2, 2, 3)
    for _ in range(3):
        ta(M.Tensor(x), M.Tensor(labels))
        tb(M.Tensor(x), M.Tensor(labels))
    np.testing.assert_allclose(a.fc.weight.asnumpy(), b.fc.weight.asnumpy(), rtol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_dense_loss_reductions(reduction):
    M.set_seed(2)
    net = make_mynet(1, 2, 2, 3)
    loss_fn = M.nn.SoftmaxCrossEntropyWithLogits(reduction=reduction)
    x, labels = batch(5, 1, 2, 2, 3)
    W, b = net.fc.weight.asnumpy().astype(np.float64), net.fc.bias.asnumpy().astype(np.float64)
    loss, dW, _ = ref_grads(x, labels, W, b)
    scale = 1 / len(x) if reduction == "mean" else 1.0
    train = make_train_net(net, lambda n: M.nn.SGD(n.trainable_params(), 0.1), loss_fn)
    got = train(M.Tensor(x), M.Tensor(labels)).asnumpy()
    assert got.shape == ()
    np.testing.assert_allclose(got, loss.sum() * scale, rtol=1e-5)
    np.testing.assert_allclose(net.fc.weight.asnumpy(), W - 0.1 * scale * dW, rtol=1e-5,
                               atol=1e-7)


# -- cells ---------------------------------------------------------------------------------------
def test_set_train_reaches_every_cell():
    net = LeNet5()
    assert net.training is False
    net.set_train()
    assert all(cell.training for _, cell in net.cells_and_names())
    net.set_train(False)
    assert not net.fc1.training


def test_conv2d_same_padding_shapes():
    from todkit.opset.registry import OPS

    if "Conv2D" not in OPS:
        pytest.skip("Conv2D has not landed in todkit.opset yet")
    conv = M.nn.Conv2d(2, 4, 3, stride=2)  # pad_mode 'same' by default
    out = conv(M.Tensor(np.ones((1, 2, 7, 6), np.float32)))
    assert out.shape == (1, 4, 4, 3)
    g = export_graph(conv, M.Tensor(np.ones((1, 2, 7, 6), np.float32)))
    assert g.nodes[0].attrs["pad_list"] == (1, 1, 0, 1)


def test_parameter_set_data_keeps_the_traced_array():
    net = make_mynet(1, 2, 2, 3)
    train = make_train_net(net, lambda n: M.nn.SGD(n.trainable_params(), 0.1))
    x, labels = batch(2, 1, 2, 2, 3)
    train(M.Tensor(x), M.Tensor(labels))
    net.fc.weight.set_data(np.zeros((3, 4), np.float32))  # same shape: copied in place
    train(M.Tensor(x), M.Tensor(labels))
    assert not np.all(net.fc.weight.asnumpy() == 0)  # the traced graph saw the same array


def test_traced_tensor_cannot_be_read():
    class Peek(M.nn.Cell):
        def construct(self, x):
            return x.asnumpy()

    with pytest.raises(RuntimeError, match="graph"):
        export_graph(Peek(), M.Tensor(np.ones((1, 2), np.float32)))


def test_mindspore_top_level_names():
    from todkit import ops

    M.set_context(mode=M.GRAPH_MODE)
    assert M.get_context("mode") == M.GRAPH_MODE
    assert ops.Reshape is P.Reshape and M.dtype.float32 is M.float32
    from todkit import Parameter, Tensor, nn  # noqa: F401
    from todkit.common.initializer import Normal, initializer

    t = initializer(Normal(0.02), [3, 4], M.float32)
    assert t.shape == (3, 4) and t.dtype == M.float32
