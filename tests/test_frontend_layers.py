"""Layers, losses and optimizers of issue 4 against independent NumPy references, eagerly
and (where it matters) through a traced train step. A row whose op the opset does not have
yet skips naming the op; construction-time rules (names, defaults, errors) never skip."""

from __future__ import annotations

import numpy as np
import pytest

import todkit as M
from todkit import nn
from todkit.ops import operations as P
from todkit.opset.registry import OPS

RNG = np.random.default_rng(0)


def needs(*ops):
    missing = [o for o in ops if o not in OPS]
    if missing:
        pytest.skip(f"needs op(s) {missing}, not in the opset yet")


def t(a):
    return M.Tensor(np.asarray(a, np.float32))


X = RNG.standard_normal((2, 3, 6, 6)).astype(np.float32)
V = RNG.standard_normal((4, 5)).astype(np.float32) * 4


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


ACTIVATIONS = [
    # (layer, op, reference)
    (lambda: nn.ReLU6(), "ReLU6", lambda x: np.clip(x, 0, 6)),
    (lambda: nn.HSwish(), "HSwish", lambda x: x * np.clip(x + 3, 0, 6) / 6),
    (lambda: nn.GELU(), "GeLU", lambda x: 0.5 * x * (1 + np.tanh(
        np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))),
    (lambda: nn.Softmax(), "Softmax", _softmax),
    (lambda: nn.LogSoftmax(), "LogSoftmax", lambda x: np.log(_softmax(x))),
    (lambda: nn.Sigmoid(), "Sigmoid", lambda x: 1 / (1 + np.exp(-x))),
    (lambda: nn.Tanh(), "Tanh", np.tanh),
]


@pytest.mark.parametrize("make,op,ref", ACTIVATIONS, ids=[a[1] for a in ACTIVATIONS])
def test_activation_layers(make, op, ref):
    needs(op)
    np.testing.assert_allclose(make()(t(V)).asnumpy(), ref(V), rtol=1e-5, atol=1e-6)


def test_get_activation_names_and_dense_activation():
    assert isinstance(nn.get_activation("relu6"), nn.ReLU6)
    assert isinstance(nn.Dense(3, 2, activation="relu").activation, nn.ReLU)
    assert isinstance(nn.get_activation("elu"), nn.ELU)
    with pytest.raises(NotImplementedError, match="mish"):
        nn.get_activation("mish")
    d = nn.Dense(5, 3, activation="relu")
    want = np.maximum(V @ d.weight.asnumpy().T + d.bias.asnumpy(), 0)
    np.testing.assert_allclose(d(t(V)).asnumpy(), want, rtol=1e-5, atol=1e-6)


def _conv_ref(x, w, stride, pads, dilation, group):
    n, _c, _h, _wd = x.shape
    o, cg, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (0, 0), pads[:2], pads[2:]))
    oh = (xp.shape[2] - dilation * (kh - 1) - 1) // stride + 1
    ow = (xp.shape[3] - dilation * (kw - 1) - 1) // stride + 1
    out = np.zeros((n, o, oh, ow), np.float64)
    og = o // group
    for g in range(group):
        xs = xp[:, g * cg:(g + 1) * cg]
        for i in range(oh):
            for j in range(ow):
                patch = xs[:, :, i * stride:i * stride + dilation * (kh - 1) + 1:dilation,
                           j * stride:j * stride + dilation * (kw - 1) + 1:dilation]
                out[:, g * og:(g + 1) * og, i, j] = np.einsum(
                    "nchw,ochw->no", patch, w[g * og:(g + 1) * og])
    return out


CONVS = [
    # (kwargs, explicit pads top, bottom, left, right)
    (dict(pad_mode="valid"), (0, 0, 0, 0)),
    (dict(pad_mode="same", stride=2), (0, 1, 0, 1)),
    (dict(pad_mode="pad", padding=1, dilation=2), (1, 1, 1, 1)),
    (dict(pad_mode="pad", padding=(1, 0, 2, 1)), (1, 0, 2, 1)),
    (dict(pad_mode="same", group=3, has_bias=True), (1, 1, 1, 1)),  # depthwise
]


@pytest.mark.parametrize("kw,pads", CONVS, ids=[str(c[0]) for c in CONVS])
def test_conv2d_modes(kw, pads):
    group = kw.get("group", 1)
    out_ch = 3 if group == 3 else 4
    conv = nn.Conv2d(3, out_ch, 3, **kw)
    assert conv.weight.shape == (out_ch, 3 // group, 3, 3)
    want = _conv_ref(X, conv.weight.asnumpy(), kw.get("stride", 1), pads,
                     kw.get("dilation", 1), group)
    if kw.get("has_bias"):
        want += conv.bias.asnumpy()[None, :, None, None]
    np.testing.assert_allclose(conv(t(X)).asnumpy(), want, rtol=1e-4, atol=1e-5)


def test_conv2d_argument_errors_name_the_layer():
    with pytest.raises(ValueError, match="group"):
        nn.Conv2d(3, 4, 3, group=2)
    with pytest.raises(ValueError, match="pad"):
        nn.Conv2d(3, 4, 3, pad_mode="same", padding=1)


def test_batchnorm_training_and_inference_as_mindspore():
    needs("BatchNorm")
    bn = nn.BatchNorm2d(3, momentum=0.9)
    assert [p.name for p in bn.get_parameters()] == ["mean", "variance", "gamma", "beta"]
    assert [p.requires_grad for p in bn.get_parameters()] == [False, False, True, True]
    assert bn.momentum == pytest.approx(0.1)  # what the op (and MindSpore's export) gets
    infer = bn(t(X)).asnumpy()
    np.testing.assert_allclose(infer, X / np.sqrt(1 + 1e-5), rtol=1e-5)
    bn.set_train()
    y = bn(t(X)).asnumpy()
    mu, var = X.mean((0, 2, 3)), X.var((0, 2, 3))
    want = (X - mu[None, :, None, None]) / np.sqrt(var[None, :, None, None] + 1e-5)
    np.testing.assert_allclose(y, want, rtol=1e-4, atol=1e-5)
    # moving = 0.9 * moving + 0.1 * batch (MindSpore 2.10 keeps the unbiased variance).
    np.testing.assert_allclose(bn.moving_mean.asnumpy(), 0.1 * mu, rtol=1e-5, atol=1e-7)
    n = X.size / 3
    np.testing.assert_allclose(bn.moving_variance.asnumpy(), 0.9 + 0.1 * var * n / (n - 1),
                               rtol=1e-5)


def test_batchnorm1d_and_input_checks():
    needs("BatchNorm")
    bn = nn.BatchNorm1d(5)
    np.testing.assert_allclose(bn(t(V)).asnumpy(), V / np.sqrt(1 + 1e-5), rtol=1e-5)
    with pytest.raises(ValueError, match="BatchNorm1d.*rank"):
        bn(t(X))
    with pytest.raises(ValueError, match="BatchNorm2d.*channels"):
        nn.BatchNorm2d(4)(t(X))


def test_dropout_only_in_training():
    d = nn.Dropout(p=0.5)
    np.testing.assert_array_equal(d(t(V)).asnumpy(), V)  # inference: identity, no op needed
    assert nn.Dropout(keep_prob=0.8).keep_prob == 0.8
    with pytest.raises(ValueError, match="Dropout: p"):
        nn.Dropout(p=1.0)
    needs("Dropout")
    d.set_train()
    y = d(t(np.ones((200, 50)))).asnumpy()
    assert set(np.unique(y)) <= {0.0, 2.0} and 0.4 < (y == 0).mean() < 0.6


def test_pooling_layers():
    needs("AvgPool")
    y = nn.AvgPool2d(2, 2)(t(X)).asnumpy()
    np.testing.assert_allclose(y, X.reshape(2, 3, 3, 2, 3, 2).mean((3, 5)), rtol=1e-5)


def test_adaptive_avg_pool_uses_ops_lite_has():
    # Output 1: ReduceMean over H, W (the zoo's global pooling); an even division: AvgPool.
    y = nn.AdaptiveAvgPool2d(1)(t(X)).asnumpy()
    np.testing.assert_allclose(y, X.mean((2, 3), keepdims=True), rtol=1e-5)
    y = nn.AdaptiveAvgPool2d((3, 3))(t(X)).asnumpy()
    np.testing.assert_allclose(y, X.reshape(2, 3, 3, 2, 3, 2).mean((3, 5)), rtol=1e-5)
    # Uneven windows need MindSpore's AdaptiveAvgPool2D, which Lite (and todkit) lack.
    with pytest.raises(Exception, match="AdaptiveAvgPool2D"):
        nn.AdaptiveAvgPool2d(4)(t(X))


def test_adaptive_avg_pool_of_one_traces_reduce_mean():
    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(1)

        def construct(self, x):
            return self.pool(x)

    from todkit.frontend.graphs import build_graph
    g, _ = build_graph(Net(), [t(X)])
    (node,) = g.nodes
    assert node.op == "ReduceMean" and node.attrs["axis"] == (2, 3) and node.attrs["keep_dims"]


def test_sequential_and_cell_list_naming():
    seq = nn.SequentialCell([nn.Dense(5, 4), nn.ReLU(), nn.Dense(4, 2)])
    assert [p.name for p in seq.get_parameters()] == ["0.weight", "0.bias", "2.weight",
                                                      "2.bias"]
    cl = nn.CellList([nn.Dense(2, 2)])
    cl.append(nn.Dense(2, 3))
    assert len(cl) == 2 and [p.name for p in cl.get_parameters()][-1] == "1.bias"


OPS_TABLE = [
    # (call, op(s), reference)
    (lambda a, b: P.Concat(1)((a, b)), ("Concat",), lambda a, b: np.concatenate([a, b], 1)),
    (lambda a, b: P.ReduceMean(keep_dims=True)(a, (2, 3)), ("ReduceMean",),
     lambda a, b: a.mean((2, 3), keepdims=True)),
    (lambda a, b: P.ReduceSum()(a, 1), ("ReduceSum",), lambda a, b: a.sum(1)),
    (lambda a, b: P.Squeeze(0)(P.ExpandDims()(a, 0)), ("Squeeze",), lambda a, b: a),
    (lambda a, b: P.Cast()(a, M.float16), ("Cast",), lambda a, b: a.astype(np.float16)),
    (lambda a, b: P.Pow()(P.Exp()(a), 2.0), ("Pow", "Exp"), lambda a, b: np.exp(a) ** 2),
    (lambda a, b: P.Log()(P.Sqrt()(a * a + 1)), ("Log", "Sqrt"),
     lambda a, b: np.log(np.sqrt(a * a + 1))),
    (lambda a, b: P.Maximum()(a, b) - P.Minimum()(a, b), ("Maximum", "Minimum"),
     lambda a, b: np.abs(a - b)),
    (lambda a, b: -(a * b) / (b * b + 1) + a - b, (), lambda a, b: -(a * b) / (b * b + 1) + a - b),
    (lambda a, b: P.Transpose()(a, (0, 2, 3, 1)), (), lambda a, b: a.transpose(0, 2, 3, 1)),
]


@pytest.mark.parametrize("call,ops,ref", OPS_TABLE, ids=[
    "concat", "reduce_mean", "reduce_sum", "squeeze", "cast", "pow_exp", "log_sqrt",
    "max_min", "operators", "transpose"])
def test_user_construct_ops(call, ops, ref):
    needs(*ops)
    b = RNG.standard_normal(X.shape).astype(np.float32)
    got = call(t(X), t(b)).asnumpy()
    want = ref(X, b)
    assert got.dtype == want.dtype
    np.testing.assert_allclose(got, want, rtol=1e-3 if want.dtype == np.float16 else 1e-5,
                               atol=1e-5)


def test_matmul_operator():
    w = RNG.standard_normal((5, 3)).astype(np.float32)
    np.testing.assert_allclose((t(V) @ t(w)).asnumpy(), V @ w, rtol=1e-5)


def test_hsigmoid_silu_embedding_and_dropout2d():
    x = RNG.standard_normal((2, 3, 4, 4)).astype(np.float32) * 4
    np.testing.assert_allclose(nn.HSigmoid()(t(x)).asnumpy(), np.clip(x + 3, 0, 6) / 6,
                               rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(nn.SiLU()(t(x)).asnumpy(), x / (1 + np.exp(-x)), rtol=1e-5,
                               atol=1e-6)
    emb = nn.Embedding(7, 3)
    ids = np.array([[1, 6], [0, 1]], np.int32)
    out = emb(M.Tensor(ids)).asnumpy()
    assert out.shape == (2, 2, 3)
    np.testing.assert_array_equal(out, emb.embedding_table.asnumpy()[ids])
    with pytest.raises(NotImplementedError, match="padding_idx"):
        nn.Embedding(7, 3, padding_idx=0)
    drop = nn.Dropout2d(p=0.5)
    drop.set_train(False)
    np.testing.assert_array_equal(drop(t(x)).asnumpy(), x)
    drop.set_train(True)
    y = drop(t(x)).asnumpy()
    for n in range(2):  # each (sample, channel) plane is dropped or kept and scaled, whole
        for c in range(3):
            plane = y[n, c]
            assert np.all(plane == 0) or np.allclose(plane, x[n, c] * 2, rtol=1e-6)
    with pytest.raises(ValueError, match="NCHW"):
        drop(t(x[0]))
