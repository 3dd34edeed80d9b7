"""W4's depthwise convolutions (issue 6): ``_depthwise_nhwc`` in blocks of rows of one
sample or of several whole samples, its buffer's padding zeroed once per call and per
border block. Every block cutting gives the whole-batch per-tap sum bit for bit."""

from __future__ import annotations

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import conv
from todkit.opset.registry import OPS

GEOMETRIES = [  # shape, k, stride, dilation, pad_mode, pad_list
    ((5, 7, 9, 5), 3, 1, 1, "same", (0, 0, 0, 0)),
    ((5, 8, 8, 4), 3, 2, 1, "same", (0, 0, 0, 0)),
    ((3, 11, 6, 3), 3, 2, 2, "pad", (2, 1, 0, 3)),
    ((5, 5, 5, 2), 5, 1, 1, "valid", (0, 0, 0, 0)),
    ((3, 3, 3, 2), 3, 1, 1, "pad", (4, 4, 4, 4)),
    ((5, 9, 9, 6), 3, 3, 1, "pad", (1, 0, 2, 1)),
]


def _row_bytes(shape, k, s, d, pads):
    ow = (shape[2] + pads[2] + pads[3] - (k - 1) * d - 1) // s + 1
    return ow * shape[3] * 4


@pytest.mark.parametrize("shape,k,s,d,pad_mode,pads", GEOMETRIES)
@pytest.mark.parametrize("cut", ["rows", "one sample", "two samples", "all"])
def test_blocks_give_the_whole_batch_taps(shape, k, s, d, pad_mode, pads, cut, monkeypatch):
    c = shape[3]
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "group": c, "out_channel": c,
         "kernel_size": (k, k), "stride": (s, s), "dilation": (d, d), "pad_mode": pad_mode,
         "pad_list": pads}
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((c, k, k, 1)).astype(np.float32)
    (t,) = OPS["Conv2D"].infer([TensorType(x.shape, dtypes.float32),
                                TensorType(w.shape, dtypes.float32)], a)
    geo = conv._Geo(x.shape, w.shape, a)
    sample = geo.ohw[0] * geo.ohw[1] * c * 4
    block = {"rows": 64, "one sample": sample, "two samples": 2 * sample + 4,
             "all": 1 << 30}[cut]
    monkeypatch.setattr(conv, "DEPTHWISE_BLOCK_BYTES", block)
    spans = conv._depthwise_spans(shape[0], geo.ohw[0], max(1, block // _row_bytes(
        shape, k, s, d, geo.pads)))
    assert sorted((n, r) for n0, n1, r0, r1 in spans for n in range(n0, n1)
                  for r in range(r0, r1)) == [(n, r) for n in range(shape[0])
                                              for r in range(geo.ohw[0])]
    if cut == "two samples":
        assert max(n1 - n0 for n0, n1, _, _ in spans) == 2
    out = np.full(t.shape, np.nan, np.float32)
    OPS["Conv2D"].kernel([x, w], [out], a, None)
    xp, want = geo.lay.pad(x, geo.pads), np.zeros_like(out)
    for i, j, tap in geo.taps():
        want += xp[tap] * geo.weight_tap(w, i, j)
    np.testing.assert_array_equal(out, want)
