"""A one-input-channel NHWC convolution and its filter gradient make their tap-major columns
a chunk of samples at a time (``_single_channel_forward`` / ``_single_channel_filter`` in
todkit/opset/conv.py) instead of the filter gradient reading columns the forward pass kept
alive through the backward pass: float64 equality with the NCHW kernels over strides,
dilations, pads and chunk sizes (one sample, a remainder chunk, the whole batch); neither
these nor columns under ``COLUMN_CHUNK_BYTES`` are shared any more."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType, Value
from todkit.opset import conv

GEOMETRIES = list(itertools.product(
    [(3, 3), (5, 5), (2, 3)],
    [(1, 1), (2, 2), (2, 1)],
    [(1, 1), (2, 2)],
    ["valid", "same", (2, 0, 1, 1)],
))


def _attrs(kernel, stride, dilation, pads, o=4):
    mode, pad_list = (pads, (0, 0, 0, 0)) if isinstance(pads, str) else ("pad", pads)
    return dict(out_channel=o, kernel_size=kernel, mode=1, pad_mode=mode, pad_list=pad_list,
                stride=stride, dilation=dilation, group=1, format="NHWC")


@pytest.mark.parametrize("chunk_samples", [1, 2, 5])
@pytest.mark.parametrize("kernel,stride,dilation,pads", GEOMETRIES)
def test_chunked_columns_filter_equals_nchw(kernel, stride, dilation, pads, chunk_samples,
                                           monkeypatch):
    rng = np.random.default_rng(len(str((kernel, stride, dilation, pads))) + chunk_samples)
    a = _attrs(kernel, stride, dilation, pads)
    x = rng.standard_normal((5, 11, 9, 1))
    w_shape = (4, *kernel, 1)
    geo = conv._Geo(x.shape, w_shape, a)
    assert conv._single_channel(geo)
    per_sample = kernel[0] * kernel[1] * geo.ohw[0] * geo.ohw[1]
    monkeypatch.setattr(conv, "SINGLE_CHANNEL_CHUNK", per_sample * chunk_samples)
    ws = conv.conv_workspace(x.shape, w_shape, a, dtypes.float64)
    assert ws[1].shape[0] == min(5, chunk_samples) * per_sample
    dy = rng.standard_normal((5, *geo.ohw, 4))
    dw = np.full(w_shape, np.nan)
    conv._conv_backprop_filter(dy, x, dw, a, [dw, *[np.full(t.shape, np.nan) for t in ws]])
    an = dict(a, format="NCHW")
    dwn = np.empty((4, 1, *kernel))
    conv._conv_backprop_filter(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)),
                               np.ascontiguousarray(x.transpose(0, 3, 1, 2)), dwn, an)
    np.testing.assert_allclose(dw, dwn.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    fresh = np.full(w_shape, np.nan)  # no planned scratch: its own chunk
    conv._conv_backprop_filter(dy, x, fresh, a)
    np.testing.assert_allclose(fresh, dw, rtol=1e-12, atol=1e-12)
    # The forward pass by the same chunks.
    w = rng.standard_normal(w_shape)
    y = np.full(dy.shape, np.nan)
    conv._conv_forward(x, w, y, a, [y, *[np.full(t.shape, np.nan) for t in ws]])
    yn = np.empty((5, 4, *geo.ohw))
    conv._conv_forward(np.ascontiguousarray(x.transpose(0, 3, 1, 2)),
                       np.ascontiguousarray(w.transpose(0, 3, 1, 2)), yn, an)
    np.testing.assert_allclose(y, yn.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


def _every_other_row_equals_contiguous(run, shape) -> np.ndarray:
    """``run(out)`` into every other row of a larger array writes what it writes into a
    contiguous one, and nothing in between; returns the contiguous result."""
    big = np.full((2 * shape[0], *shape[1:]), 5.0)
    run(big[::2])
    want = np.empty(shape)
    run(want)
    np.testing.assert_allclose(big[::2], want, rtol=1e-12)
    assert (big[1::2] == 5.0).all()
    return want


def test_non_contiguous_outputs():
    rng = np.random.default_rng(9)
    a = _attrs((3, 3), (1, 1), (1, 1), "same")
    x = rng.standard_normal((3, 6, 6, 1))
    dy = rng.standard_normal((3, 6, 6, 4))
    dw = _every_other_row_equals_contiguous(
        lambda out: conv._conv_backprop_filter(dy, x, out, a), (4, 3, 3, 1))
    _every_other_row_equals_contiguous(lambda out: conv._conv_forward(x, dw, out, a),
                                       (3, 6, 6, 4))


def test_small_or_one_channel_columns_are_not_kept_for_the_backward_pass():
    x = Value("x", TensorType((32, 32, 32, 1), dtypes.float32))
    assert conv.columns_key(x, (6, 5, 5, 1), _attrs((5, 5), (1, 1), (1, 1), "valid", 6)) == {}
    x6 = Value("x6", TensorType((32, 14, 14, 6), dtypes.float32))  # LeNet's conv2: 1.9 MB
    assert conv.columns_key(x6, (16, 5, 5, 6), _attrs((5, 5), (1, 1), (1, 1), "valid", 16)) == {}
    x64 = Value("x64", TensorType((32, 16, 16, 64), dtypes.float32))  # ResNet18's: 18.9 MB
    assert conv.columns_key(x64, (64, 3, 3, 64), _attrs((3, 3), (1, 1), (1, 1), "same", 64))
