# ruff: noqa: E501  (quotes MindSpore's ToD docs example verbatim)
"""Frozen layers: only the optimizer's parameters get backward nodes, and BatchNorm in a
frozen backbone follows set_train() as MindSpore's does. Includes the seed's second example
(GoogleNet transfer learning from MindSpore's ToD docs) with only its imports changed."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from collections import Counter

import numpy as np
import pytest

import todkit as M
from todkit import models, nn
from todkit.frontend.export import export_graph
from todkit.opset.registry import OPS

# MindSpore's own GoogleNet classifier-only export differentiates 5 nodes: TupleGetItem
# (SoftmaxCrossEntropyWithLogits' backprop output), ExpandDims, Mul, MatMul, BiasAddGrad. The IR
# has no tuples (nodes have several outputs), so the same gradient is these 4 nodes.
HEAD_ONLY_BACKWARD = Counter({"ExpandDims": 1, "Mul": 1, "MatMul": 1, "BiasAddGrad": 1})


def head_only_train_graph(net, head, x, classes, set_train):
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits())
    opt = nn.Adam(M.ParameterTuple(head.trainable_params()), learning_rate=1e-3)
    train = nn.TrainOneStepCell(loss_net, opt)
    if set_train:
        train.set_train()
    label = np.zeros((x.shape[0], classes), np.float32)
    return export_graph(train, M.Tensor(x), M.Tensor(label))


def backward_ops(graph) -> Counter:
    return Counter(n.op for n in graph.nodes if n.name.startswith("Gradients/"))


@pytest.mark.parametrize("set_train", [True, False])
def test_frozen_resnet_backbone_gets_no_backward_nodes(set_train):
    net = models.ResNet50(5)
    x = np.zeros((2, 3, 32, 32), np.float32)
    g = head_only_train_graph(net, net.end_point, x, 5, set_train)
    assert backward_ops(g) == HEAD_ONLY_BACKWARD
    assert Counter(n.op for n in g.nodes)["Adam"] == 2
    bns = [n for n in g.nodes if n.op == "BatchNorm"]
    assert len(bns) == 53
    # MindSpore's TrainWrap calls set_train(): the frozen backbone's BatchNorm then uses batch
    # statistics and updates its moving statistics; without it, inference BatchNorm.
    assert all(n.attrs["is_training"] is set_train for n in bns)


def test_frozen_backbone_batchnorm_updates_moving_stats_when_training():
    """An eager train step with the backbone frozen: weights stay, moving statistics move."""
    M.set_seed(1)
    net = models.ResNet50(3)
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
    train = nn.TrainOneStepCell(loss_net, nn.Momentum(net.end_point.trainable_params(), 0.1,
                                                      0.9))
    train.set_train()
    conv_w, mean0 = net.conv1.weight.asnumpy(), net.bn1.moving_mean.asnumpy()
    head_w = net.end_point.weight.asnumpy()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    train(M.Tensor(x), M.Tensor(np.array([0, 2], np.int32)))
    np.testing.assert_array_equal(net.conv1.weight.asnumpy(), conv_w)
    assert not np.array_equal(net.bn1.moving_mean.asnumpy(), mean0)
    assert not np.array_equal(net.end_point.weight.asnumpy(), head_w)


SEED_GOOGLENET = textwrap.dedent("""\
    from todkit.models import GoogleNet

    import todkit as M
    from todkit.ops import operations as P
    from todkit.common.parameter import ParameterTuple

    n,c,h,w = 32,3,224,224
    num_of_classes = 10

    gnet = GoogleNet(num_of_classes)

    trainable_weights_list = []
    trainable_weights_list.extend(gnet.classifier.trainable_params())
    trainable_weights = ParameterTuple(trainable_weights_list)

    loss_net = M.nn.WithLossCell(gnet, M.nn.SoftmaxCrossEntropyWithLogits())
    optimizer = M.nn.Adam(trainable_weights, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8, use_locking=False, use_nesterov=False, weight_decay=0.0, loss_scale=1.0)
    train_net = M.nn.TrainOneStepCell(loss_net, optimizer)

    import numpy as np
    x=M.Tensor(np.ones((n,c,h,w)), M.float32)
    label = M.Tensor(np.zeros([n, num_of_classes]).astype(np.float32))

    from todkit.train.serialization import export
    export(train_net, x, label, file_name="gnet_tod.mindir", file_format='MINDIR')
    """)


def test_seed_googlenet_example_exports_the_classifier_only(tmp_path):
    if "Concat" not in OPS:
        pytest.skip("GoogleNet needs the Concat op, not in the opset yet")
    (tmp_path / "gnet.py").write_text(SEED_GOOGLENET)
    r = subprocess.run([sys.executable, "gnet.py"], cwd=tmp_path, capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    from todkit.formats import mindir

    g = mindir.read(str(tmp_path / "gnet_tod.mindir"))
    assert backward_ops(g) == HEAD_ONLY_BACKWARD
    assert Counter(n.op for n in g.nodes)["Adam"] == 2
    # Without set_train(), as in the example, MindSpore's BatchNorm stays in inference form.
    assert not any(n.attrs.get("is_training") for n in g.nodes if n.op == "BatchNorm")


# -- on the device: a classifier-only step is the backbone's forward pass plus the head -------
# What the train plan may run beyond the eval plan: the loss, the head's 4 backward nodes, the
# optimizer and its step counter, and the converter's ``<weight>_post_perm`` Transposes (left
# behind with no reader, as MindSpore Lite's converter leaves them).
TRAIN_ONLY_OPS = {"SparseSoftmaxCrossEntropyWithLogits", "ApplyMomentum", "AssignAdd",
                  "ExpandDims", "Mul", "MatMul", "BiasAddGrad"}
BACKBONE_GRAD_OPS = {"Conv2DBackpropInput", "Conv2DBackpropFilter", "BatchNormGrad",
                     "ReluGrad", "MaxPoolGrad", "SplitWithSize"}


def test_classifier_only_device_step_runs_no_backbone_backward(tmp_path):
    from todkit import lite
    from todkit.converter.convert import convert

    M.set_seed(0)
    net = models.GoogleNet(4)
    loss_net = nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
    train = nn.TrainOneStepCell(loss_net, nn.Momentum(net.classifier.trainable_params(), 0.1,
                                                      0.9))
    train.set_train()
    x = np.random.default_rng(0).standard_normal((2, 3, 32, 32)).astype(np.float32)
    y = np.array([1, 3], np.int32)
    path = M.export(train, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / "g"),
                    file_format="MINDIR")
    model = lite.Model()
    model.build_from_file(convert(path, str(tmp_path / "g"), train_model=True),
                          lite.ModelType.MINDIR_LITE, lite.Context(), train_cfg=lite.TrainCfg())
    session = model.session
    eval_ids = {id(n) for n in session.eval.nodes}
    extra = [n for n in session.train.nodes if id(n) not in eval_ids]
    dead_perms = [n for n in extra if n.op == "Transpose" and n.name.endswith("_post_perm")]
    assert all(not n.outputs[0].users for n in dead_perms)
    others = [n for n in extra if n not in dead_perms]
    assert {n.op for n in others} <= TRAIN_ONLY_OPS, Counter(n.op for n in others)
    grads = [n for n in session.train.nodes if "Gradients" in n.name]
    assert grads and all("classifier" in n.name or "_loss_fn" in n.name for n in grads), \
        [n.name for n in grads]
    assert not BACKBONE_GRAD_OPS & {n.op for n in session.train.nodes}
    inputs = model.get_inputs()
    inputs[0].set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    inputs[1].set_data_from_numpy(y)
    model.set_train_mode(True)
    assert model.run_step()
    assert np.isfinite(float(model.get_outputs()[0].get_data_to_numpy()))
