"""The front end against real MindSpore 2.10 output (corpus/mindspore-2.10): the same nets
export the same ops, parameters and scope names, and train to the same weights."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

import todkit as M
from tests.shared_paths import MS210 as CORPUS
from todkit.common.parameter import ParameterTuple
from todkit.frontend import export_graph
from todkit.ops import operations as P

RUN = CORPUS / "mlp_digits_run"

pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason="MindSpore corpus not available")


class DigitsMLP(M.nn.Cell):
    def __init__(self):
        super().__init__()
        self.fc1 = M.nn.Dense(64, 32)
        self.relu = M.nn.ReLU()
        self.fc2 = M.nn.Dense(32, 10)

    def construct(self, x):
        return self.fc2(self.relu(self.fc1(x)))


def mlp_train_net():
    net = DigitsMLP()
    loss = M.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = M.nn.Adam(net.trainable_params(), learning_rate=1e-3)
    return net, M.nn.TrainOneStepCell(M.nn.WithLossCell(net, loss), opt)


def read_reference(name):
    mindir = pytest.importorskip("todkit.formats.mindir")
    if not hasattr(mindir, "read"):
        pytest.skip("the MINDIR reader has not landed")
    return mindir.read(str(CORPUS / name))


def _params(g):
    return {v.name: (v.type.shape, v.type.dtype) for v in g.consts if v.param}


def _same_structure(ours, ref):
    assert Counter(n.op for n in ours.nodes) == Counter(n.op for n in ref.nodes)
    assert _params(ours) == _params(ref)
    assert [(v.name, v.type) for v in ours.inputs] == [(v.name, v.type) for v in ref.inputs]
    assert [v.type for v in ours.outputs] == [v.type for v in ref.outputs]
    # Forward and optimizer names agree exactly; MindSpore's backward scopes are unreliable
    # (common-subexpression merging relabels them), so those are compared by count only.
    def names(g):
        return sorted(n.name for n in g.nodes if not n.name.startswith("Gradients/"))

    assert names(ours) == names(ref)


def test_mlp_export_matches_mindspore():
    ref = read_reference("mlp_digits_train.mindir")
    _, train = mlp_train_net()
    x = np.load(RUN / "ref_x.npy")[0]
    y = np.load(RUN / "ref_y.npy")[0]
    _same_structure(export_graph(train, M.Tensor(x), M.Tensor(y)), ref)


def test_seed_export_matches_mindspore():
    ref = read_reference("my_net_tod.mindir")
    n, c, h, w = 32, 3, 224, 224

    class MyNet(M.nn.Cell):
        def __init__(self, num_of_classes):
            super().__init__()
            self.fc = M.nn.Dense(c * h * w, num_of_classes)

        def construct(self, x):
            return self.fc(P.Reshape()(x, (-1, c * h * w)))

    net = MyNet(10)
    loss_net = M.nn.WithLossCell(net, M.nn.SoftmaxCrossEntropyWithLogits())
    opt = M.nn.Adam(ParameterTuple(net.trainable_params()), learning_rate=1e-3)
    train = M.nn.TrainOneStepCell(loss_net, opt)
    x = M.Tensor(np.ones((n, c, h, w)), M.float32)
    label = M.Tensor(np.zeros([n, 10]).astype(np.float32))
    g = export_graph(train, x, label)
    _same_structure(g, ref)
    assert sorted(n.name for n in g.nodes) == sorted(n.name for n in ref.nodes)


def test_mlp_training_reproduces_mindspore_run():
    """20 eager steps from MindSpore's initial weights: per-step losses and final weights."""
    log = json.loads((RUN / "losses.json").read_text())
    net, train = mlp_train_net()
    init = np.load(RUN / "init_weights.npz")
    for p in net.trainable_params():
        p.set_data(init[p.name])
    xs, ys = np.load(RUN / "ref_x.npy"), np.load(RUN / "ref_y.npy")
    losses = [float(train(M.Tensor(xs[i % 4]), M.Tensor(ys[i % 4])).asnumpy())
              for i in range(log["steps"])]
    np.testing.assert_allclose(losses, log["loss"], rtol=1e-5, atol=1e-6)
    final = np.load(RUN / "final_weights.npz")
    for p in net.trainable_params():
        np.testing.assert_allclose(p.asnumpy(), final[p.name], rtol=1e-5, atol=1e-6)


def test_mlp_logits_before_training():
    net, _ = mlp_train_net()
    init = np.load(RUN / "init_weights.npz")
    for p in net.trainable_params():
        p.set_data(init[p.name])
    logits = net(M.Tensor(np.load(RUN / "ref_x.npy")[0])).asnumpy()
    np.testing.assert_allclose(logits, np.load(RUN / "init_logits_b0.npy"), rtol=1e-5,
                               atol=1e-6)


def test_lenet_tod_export_matches_mindspore():
    """The official ToD LeNet recipe (lite-2.0/lenet_tod.ms210.mindir, exported by 2.10):
    LeNet5, sparse mean cross entropy, Adam with weight decay."""
    from tests.test_frontend import LeNet5

    ref = read_reference("../lite-2.0/lenet_tod.ms210.mindir")
    net = LeNet5()
    loss = M.nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = M.nn.Adam(net.trainable_params(), learning_rate=0.003, eps=1e-5, weight_decay=4e-5)
    train = M.nn.TrainOneStepCell(M.nn.WithLossCell(net, loss), opt)
    x = M.Tensor(np.zeros((32, 1, 32, 32), np.float32))
    y = M.Tensor(np.zeros(32, np.int32))
    _same_structure(export_graph(train, x, y), ref)


def test_lenet_inference_export_matches_mindspore():
    from tests.test_frontend import LeNet5

    ref = read_reference("lenet5_infer.mindir")
    g = export_graph(LeNet5(), M.Tensor(np.zeros((32, 1, 32, 32), np.float32)))
    assert Counter(n.op for n in g.nodes) == Counter(n.op for n in ref.nodes)
    assert _params(g) == _params(ref)
    assert [(v.name, v.type) for v in g.inputs] == [(v.name, v.type) for v in ref.inputs]
    assert g.attrs["training"] is False
    # MindSpore reused the train graph, so its scopes say network-WithLossCell/_backbone-.
    prefix = "Default/network-WithLossCell/_backbone-LeNet5/"
    assert [n.name for n in g.nodes] == [n.name.replace(prefix, "Default/") for n in ref.nodes]
    for ours, theirs in zip(g.nodes, ref.nodes):
        assert ours.attrs == theirs.attrs, ours.name
