"""Two threads, the pieces' scratch (issue 6, W4's 2-thread memory): a depthwise forward's
pieces block by their buffers' bytes (``conv.DEPTHWISE_BUFFER``: stride-2 input rows are ~4x
their output block, and two pieces' buffers were W4's 2-thread peak), and a frozen forward
that makes its columns a chunk at a time gives each piece its share of the planned chunk
(``conv.COLUMN_CHUNK``) instead of a spare buffer per piece."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_perf_2t_parallel import (
    H,
    W,
    _run,
    _split_calls,
    frozen_net,
    small,  # noqa: F401  (autouse: every call is split)
)
from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import conv
from todkit.opset.registry import OPS
from todkit.runtime import rewrite_parallel, workers

GEOMETRIES = [  # NHWC shape, kernel, stride, dilation, pad_list
    ((3, 9, 8, 5), 3, 1, 1, (1, 1, 1, 1)),
    ((3, 9, 8, 5), 3, 2, 1, (1, 1, 1, 1)),
    ((2, 11, 7, 3), 3, 2, 1, (0, 1, 0, 1)),
    ((2, 10, 10, 4), 3, 1, 2, (2, 2, 2, 2)),
    ((4, 6, 6, 6), 5, 3, 1, (2, 1, 2, 1)),
    ((2, 7, 7, 8), 3, 2, 1, (1, 1, 1, 1)),
]


def _attrs(c, k, s, d, pads):
    return {**OPS["Conv2D"].attrs, "format": "NHWC", "group": c, "out_channel": c,
            "kernel_size": (k, k), "stride": (s, s), "dilation": (d, d), "pad_mode": "pad",
            "pad_list": pads}


@pytest.mark.parametrize("shape,k,s,d,pads", GEOMETRIES)
@pytest.mark.parametrize("budget", [1, 300, 900, 2500, 6000, 1 << 30])
def test_depthwise_blocks_by_buffer_bytes_equal_the_default_bit_for_bit(shape, k, s, d, pads,
                                                                      budget):
    c = shape[3]
    a = _attrs(c, k, s, d, pads)
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((c, k, k, 1)).astype(np.float32)
    (t,) = OPS["Conv2D"].infer([TensorType(x.shape, dtypes.float32),
                                TensorType(w.shape, dtypes.float32)], a)
    want = np.full(t.shape, np.nan, np.float32)
    OPS["Conv2D"].kernel([x, w], [want], a, None)
    got = np.full(t.shape, np.nan, np.float32)
    OPS["Conv2D"].kernel([x, w], [got], {**a, conv.DEPTHWISE_BUFFER: budget}, None)
    np.testing.assert_array_equal(got, want)
    # The rows chosen: the most whose buffers fit the budget (one row at least).
    geo = conv._Geo(x.shape, w.shape, a)
    rows = conv._depthwise_rows(geo, 4, budget)
    (kh, kw), (sh, sw), (dh, dw), (oh, ow) = geo.khw, geo.stride, geo.dilation, geo.ohw
    pw = -(-((ow - 1) * sw + (kw - 1) * dw + 1) // sw)

    def cost(r):
        per, r = (r // oh, oh) if r >= oh else (1, r)
        return (per * (sw * ((r - 1) * sh + (kh - 1) * dh + 1) * pw + r * ow)
                + kh * kw * ow) * c * 4
    assert rows == 1 or cost(rows) <= budget
    assert rows == shape[0] * oh or cost(rows + 1) > budget


def test_depthwise_pieces_get_the_buffer_budget(monkeypatch):
    seen = []
    real = conv._depthwise_nhwc

    def spy(geo, x, w, out, buffer_bytes=None):
        seen.append(buffer_bytes)
        return real(geo, x, w, out, buffer_bytes)
    monkeypatch.setattr(conv, "_depthwise_nhwc", spy)
    one = _run(frozen_net(), 1, steps=1)
    assert set(seen) == {None}
    seen.clear()
    two = _run(frozen_net(), 2, steps=1)
    assert rewrite_parallel.DEPTHWISE_PIECE_BYTES in seen
    for k, v in one[2].items():
        np.testing.assert_array_equal(two[2][k], v, err_msg=k)
    np.testing.assert_array_equal(two[3], one[3])


def test_chunked_forward_pieces_share_the_planned_chunk(monkeypatch):
    """A frozen 3x3 forward on the input makes its columns a chunk at a time (here two
    samples' worth): its two pieces make one-sample chunks in the planned chunk, and no
    spare buffer is made for them."""
    sample = H * W * 9 * 8 * 4  # one sample's columns (C = 8 channels, 3x3)
    monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", 2 * sample)
    reserved = []
    real = workers.Parallel.reserve
    monkeypatch.setattr(workers.Parallel, "reserve",
                        lambda self, part, nbytes: (reserved.append(nbytes),
                                                    real(self, part, nbytes))[1])
    chunks = []
    real_chunk = conv._chunked_columns_forward
    monkeypatch.setattr(conv, "_chunked_columns_forward",
                        lambda geo, xp, w2, out, flat: (chunks.append((geo.n, flat.size)),
                                                        real_chunk(geo, xp, w2, out, flat))[1])
    one = _run(frozen_net(2, with_products=True), 1, steps=2)
    assert chunks and all(size == 2 * sample // 4 for _, size in chunks)
    chunks.clear()
    two = _run(frozen_net(2, with_products=True), 2, steps=2)
    assert "Conv2D" in _split_calls(two[0].train)
    assert chunks and all(size == sample // 4 for n, size in chunks if n < 6)
    assert not [b for b in reserved if b >= sample // 2]  # no spare columns (small ones remain)
    for a, b in zip(one[1], two[1]):
        np.testing.assert_allclose(b, a, rtol=1e-5)
    for k, v in one[2].items():
        np.testing.assert_allclose(two[2][k], v, rtol=1e-4, atol=1e-5, err_msg=k)
