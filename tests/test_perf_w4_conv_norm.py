"""W4's 1x1 expansion -> BatchNorm -> ReLU6 as one call (todkit/runtime/rewrite_conv_norm.py,
``norm.pointwise_batch_norm``): the statistics from the convolution's input, the
normalisation folded into the weight. It must give the per-node kernels' results to float
rounding (train and eval steps, the moving statistics), the exact statistics even where
|mean| >> std, and must not apply where the convolution's output is read by another node
or the statistics would cost more than they save."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import CNN as NET
from tests.test_runtime_graphs import batch_norm, f32, mean_dense_head
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit, norm
from todkit.opset.registry import OPS
from todkit.runtime import rewrite_conv_norm
from todkit.runtime.session import Session

N, H, W, K, C, CLASSES = 3, 5, 7, 4, 16, 3


@pytest.fixture(autouse=True)
def small(monkeypatch):
    """Every test chain is worth fusing; the products run in several ragged row blocks."""
    monkeypatch.setattr(rewrite_conv_norm, "MIN_OUTPUT", 0)
    monkeypatch.setattr(norm, "_PRODUCT_BYTES", 7 * C * 4)
    monkeypatch.setattr(norm, "_GRAM_BYTES", 9 * K * 8)
    monkeypatch.setattr(norm, "_ROW", 2 * C)


def _conv(g, x, k, c_in, c_out, rng):
    w = g.add_const(f"conv{k}.weight", f32(rng.normal(0, 0.5, (c_out, 1, 1, c_in))), param=True)
    attrs = {**{a: v for a, v in OPS["Conv2D"].attrs.items()}, "out_channel": c_out,
             "kernel_size": (1, 1), "format": "NHWC"}
    return emit(g, "Conv2D", [x, w], attrs, name=f"{NET}/conv{k}-Conv2d/Conv2D-op0").outputs[0]


def net_graph(seed: int = 0, c_out: int = C, share_x: bool = False) -> Graph:
    """conv1 (K -> C) -> BN -> ReLU6 (fused unless ``share_x``: an Add then also reads the
    convolution's output), conv2 (C -> C, K/C = 1: not fused) -> BN -> ReLU6, global mean,
    Dense head trained by SGD."""
    rng = np.random.default_rng(seed)
    g = Graph("conv_bn_train")
    x = g.add_input("inputs0", TensorType((N, H, W, K), dtypes.float32))
    c1 = _conv(g, x, 1, K, c_out, rng)
    r1 = emit(g, "ReLU6", [batch_norm(g, c1, "bn1", c_out, rng)],
              name=f"{NET}/act1-ReLU6/ReLU6-op0").outputs[0]
    if share_x:
        r1 = emit(g, "Add", [r1, c1], name=f"{NET}/Add-op0").outputs[0]
    c2 = _conv(g, r1, 2, c_out, c_out, rng)
    r2 = emit(g, "ReLU6", [batch_norm(g, c2, "bn2", c_out, rng)],
              name=f"{NET}/act2-ReLU6/ReLU6-op0").outputs[0]
    mean_dense_head(g, r2, c_out, N, CLASSES, rng)
    return g


def _fused(ex) -> int:
    return sum(1 for e in ex._fused.values() if e is not None
               and e[0].__name__ == "conv_batch_norm")


def _feed(s, step: int, offset: float = 1.0):
    rng = np.random.default_rng(100 + step)
    x = f32(rng.normal(offset, 2, (N, H, W, K)))
    for v, a in zip(s.inputs, (x, rng.integers(0, CLASSES, N).astype(np.int32))):
        s.current.array(v)[...] = a


def _state(s) -> dict[str, np.ndarray]:
    return {v.name: v.data.copy() for v in s.graph.values() if v.is_const}


def test_fuses_the_expansion_only():
    assert _fused(Session(net_graph()).train) == 1  # conv2 has K = C
    assert _fused(Session(net_graph(share_x=True)).train) == 0
    assert _fused(Session(net_graph(c_out=2 * K)).train) == 0  # K / C = 1/2


@pytest.mark.parametrize("offset,share_x", [(1.0, False), (300.0, False), (1.0, True)])
def test_steps_equal_the_per_node_kernels_to_rounding(offset, share_x):
    """offset 300: the centred form (|shift| > 8); share_x: the convolution's output is
    read by an Add too, so it must be made (no fusion)."""
    fused, plain = Session(net_graph(share_x=share_x)), Session(net_graph(share_x=share_x))
    assert _fused(fused.train) == _fused(fused.eval) == (0 if share_x else 1)
    plain.train.set_fused({})
    plain.eval.set_fused({})
    for step in range(3):
        for s in (fused, plain):
            s.train_mode = True
            _feed(s, step, offset)
            s.run_step()
    # The per-node path rounds x (|x| ~ 100 * offset) to float32 before normalising it:
    # ~1e-7 * offset of absolute error downstream.
    atol = 1e-6 + 1e-7 * offset
    a, b = _state(fused), _state(plain)
    for name in b:  # the moving statistics and the head's weight
        np.testing.assert_allclose(a[name], b[name], rtol=2e-5, atol=atol, err_msg=name)
    outs = []
    for s in (fused, plain):
        s.train_mode = False
        _feed(s, 9, offset)
        s.current.invoke(s.rt)
        outs.append([s.eval.array(v).copy() for v in s.roles.eval_outputs])
    for x, y in zip(*outs):
        np.testing.assert_allclose(x, y, rtol=2e-5, atol=10 * atol)


@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_statistics_and_output_against_float64(offset):
    """The batch statistics are the exact ones of the product (float64 reference to 1e-6,
    with |mean| = 1e4 std too), the output its normalisation to float32 rounding."""
    rng = np.random.default_rng(5)
    x = f32(rng.normal(0, 1, (N, H, W, K)) + offset * rng.uniform(0.5, 1, K))
    w = f32(rng.normal(0, 0.5, (C, 1, 1, K)))
    gamma, beta = f32(rng.uniform(0.5, 1.5, C)), f32(rng.normal(0, 0.5, C))
    a = {"is_training": True, "epsilon": 1e-5, "momentum": 0.1, "data_format": "NHWC"}
    outs = [np.empty((N, H, W, C), np.float32)] + [np.empty(C, np.float32) for _ in range(4)]
    norm.pointwise_batch_norm([x, w, gamma, beta, np.zeros(C, np.float32),
                               np.ones(C, np.float32)], outs, a, None)
    x64 = x.astype(np.float64).reshape(-1, K) @ w.astype(np.float64).reshape(C, K).T
    mean, var = x64.mean(axis=0), x64.var(axis=0)
    np.testing.assert_allclose(outs[3], mean, rtol=1e-6, atol=1e-6 * np.abs(mean).max())
    np.testing.assert_allclose(outs[4], var, rtol=1e-6)
    want = (x64 - mean) / np.sqrt(var + 1e-5) * gamma + beta
    scale = np.abs(x64).max() / np.sqrt(var).min()  # the product's own rounding, normalised
    np.testing.assert_allclose(outs[0].reshape(-1, C), want, rtol=0,
                               atol=4e-6 * max(scale, 1))
