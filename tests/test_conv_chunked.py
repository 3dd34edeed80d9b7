"""A forward convolution whose im2col columns no other node shares (a frozen layer) makes
them a chunk at a time (``WORKSPACE_PRIVATE``, todkit/opset/conv.py ``_chunked_columns_
forward``): the same output as the whole-batch product, with a workspace of one chunk."""

from __future__ import annotations

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import conv, emit
from todkit.opset.interpret import interpret
from todkit.opset.registry import WORKSPACE_PRIVATE
from todkit.runtime import Session


def attrs(k, s, pad):
    return {"format": "NHWC", "group": 1, "stride": (s, s), "dilation": (1, 1),
            "pad_mode": "pad", "pad_list": pad, "kernel_size": (k, k), "out_channel": 5,
            "mode": 1}


@pytest.mark.parametrize("chunk_bytes", [1, 700, 3000, 20000, 1 << 30])
@pytest.mark.parametrize("k,s,pad", [(3, 1, (1, 1, 1, 1)), (3, 2, (0, 1, 0, 1)),
                                     (5, 2, (2, 2, 2, 2)), (2, 1, (0, 0, 0, 0))])
def test_chunked_forward_equals_whole_batch(k, s, pad, chunk_bytes, monkeypatch):
    monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", chunk_bytes)
    rng = np.random.default_rng(k * 10 + s)
    x = rng.normal(size=(3, 9, 7, 4))
    w = rng.normal(size=(5, k, k, 4))
    a = attrs(k, s, pad)
    _, (oh, ow) = conv.conv_geometry(x.shape, w.shape, a)
    want = np.empty((3, oh, ow, 5))
    conv._conv_forward(x, w, want, a)
    (padded, cols), = [conv.conv_workspace(x.shape, w.shape, a, dtypes.float64, chunked=True)]
    outs = [np.full((3, oh, ow, 5), np.nan), np.empty(padded.shape), np.empty(cols.shape)]
    conv._conv_forward(x, w, outs[0], {**a, WORKSPACE_PRIVATE: True}, outs)
    np.testing.assert_allclose(outs[0], want, rtol=1e-12, atol=1e-12)
    whole = conv.conv_workspace(x.shape, w.shape, a, dtypes.float64)[1]
    assert cols.shape[0] <= whole.shape[0]
    if chunk_bytes < 3000:
        assert cols.shape[0] < whole.shape[0]


def frozen_and_trained_convs() -> Graph:
    """x -> Conv2D (weights constant, never trained) -> Conv2D (a graph input's gradient
    is not wanted either, but this one's filter gradient reads the same columns)."""
    rng = np.random.default_rng(0)
    g = Graph("convs")
    x = g.add_input("x", TensorType((2, 8, 8, 3), dtypes.float32))
    w1 = g.add_const("w1", rng.normal(size=(4, 3, 3, 3)).astype(np.float32))
    w2 = g.add_const("w2", rng.normal(size=(4, 3, 3, 4)).astype(np.float32), param=True)
    a = attrs(3, 1, (1, 1, 1, 1))
    h = emit(g, "Conv2D", [x, w1], {**a, "out_channel": 4}, name="frozen").outputs[0]
    y = emit(g, "Conv2D", [h, w2], {**a, "out_channel": 4}, name="trained").outputs[0]
    dw = emit(g, "Conv2DBackpropFilter", [y, h], {**a, "out_channel": 4,
                                                  "filter_sizes": (4, 4, 3, 3)},
              name="trained_grad").outputs[0]
    g.outputs = [y, dw]
    return g


def test_only_a_conv_sharing_no_columns_is_private_and_it_computes_the_same(monkeypatch):
    monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", 256)
    g = frozen_and_trained_convs()
    s = Session(g)
    ex = s.eval
    steps = {n.name: i for i, n in enumerate(ex.nodes)}
    assert steps["frozen"] in ex.private
    assert steps["trained"] not in ex.private and steps["trained_grad"] not in ex.private
    x = np.random.default_rng(1).normal(size=(2, 8, 8, 3)).astype(np.float32)
    s.array(g.inputs[0])[...] = x
    s.run_step()
    want = interpret(g, {g.inputs[0]: x})
    for v, ref in zip(g.outputs, want):
        np.testing.assert_allclose(s.array(v), ref, rtol=1e-5, atol=1e-5)
