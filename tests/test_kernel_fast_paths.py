"""The kernels' fast paths agree with their general paths: NHWC convolutions with planned
workspaces (padded input, im2col columns, tap-major columns for one input channel, columns
filled by the forward pass) against the NCHW kernels, and the tiled MaxPoolGrad bit for bit
against the general one (ties included)."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from todkit.opset import pool
from todkit.opset.conv import (
    _conv_backprop_filter,
    _conv_backprop_input,
    _conv_forward,
    _Geo,
    conv_workspace,
)
from todkit.opset.registry import WORKSPACE_FILLED, get_op


def _scratch(types):
    return [np.full(t.shape, np.nan, np.float32) for t in types]  # garbage must not leak


CASES = [c for c in itertools.product([1, 3, 4], [2, 4], [1, 3], [1, 2], [1, 2],
                                      ["valid", "same"], [1, 2])
         if c[0] % c[6] == 0 and c[1] % c[6] == 0]


@pytest.mark.parametrize("c,o,k,s,d,pad_mode,g", CASES)
def test_nhwc_convolutions_with_workspaces_match_nchw(c, o, k, s, d, pad_mode, g):
    rng = np.random.default_rng(c * 100 + o * 10 + k)
    n, h, w_ = 2, 9, 8
    x = rng.standard_normal((n, h, w_, c)).astype(np.float32)
    w = rng.standard_normal((o, k, k, c // g)).astype(np.float32)
    a = dict(out_channel=o, kernel_size=(k, k), mode=1, pad_mode=pad_mode,
             pad_list=(0, 0, 0, 0), stride=(s, s), dilation=(d, d), group=g, format="NHWC")
    an = dict(a, format="NCHW")
    geo = _Geo(x.shape, w.shape, a)
    oh, ow = geo.ohw
    ws = _scratch(conv_workspace(x.shape, w.shape, a, None))
    y = np.empty((n, oh, ow, o), np.float32)
    _conv_forward(x, w, y, a, [y, *ws])
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    wn = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
    yn = np.empty((n, o, oh, ow), np.float32)
    _conv_forward(xn, wn, yn, an)
    np.testing.assert_allclose(y, yn.transpose(0, 2, 3, 1), atol=1e-4)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    dyn = np.ascontiguousarray(dy.transpose(0, 3, 1, 2))
    dwn = np.empty_like(wn)
    _conv_backprop_filter(dyn, xn, dwn, an)
    # Columns filled by the forward call above (what workspace_key sharing does), or not.
    for filled in ([False, True] if g == 1 else [False]):
        dw = np.empty_like(w)
        attrs = dict(a, **{WORKSPACE_FILLED: frozenset({1})}) if filled else a
        _conv_backprop_filter(dy, x, dw, attrs, [dw, *ws])
        np.testing.assert_allclose(dw, dwn.transpose(0, 2, 3, 1), atol=1e-4)
    dx = np.empty_like(x)
    dxn = np.empty_like(xn)
    wsi = _scratch(conv_workspace(x.shape, w.shape, a, None, taps=False))
    _conv_backprop_input(dy, w, dx, a, [dx, *wsi])
    _conv_backprop_input(dyn, wn, dxn, an)
    np.testing.assert_allclose(dx, dxn.transpose(0, 2, 3, 1), atol=1e-4)


@pytest.mark.parametrize("nonfinite", [False, True])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("shape,k", [((4, 8, 8, 3), 2), ((3, 7, 9, 5), 2), ((2, 9, 9, 2), 3)])
def test_tiled_max_pool_grad_is_bit_identical(fmt, shape, k, nonfinite, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.integers(-3, 3, size=shape).astype(np.float32)  # many ties
    if fmt == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    a = dict(kernel_size=(k, k), strides=(k, k), pad_mode="valid", format=fmt)
    from todkit.core import dtypes
    from todkit.ir.graph import TensorType

    y_shape = get_op("MaxPool").infer([TensorType(x.shape, dtypes.float32)], a)[0].shape
    y = np.empty(y_shape, np.float32)
    get_op("MaxPool").kernel([x], [y], a, None)
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dy.reshape(-1)[:3] = [-0.0, 0.0, -1.0]
    if nonfinite:
        dy.reshape(-1)[3:5] = [np.inf, -np.inf]
    fast = np.full_like(x, np.nan)
    get_op("MaxPoolGrad").kernel([x, y, dy], [fast], a, None)
    monkeypatch.setattr(pool, "_tiled_max_pool_grad", lambda *args: False)
    slow = np.full_like(x, np.nan)
    get_op("MaxPoolGrad").kernel([x, y, dy], [slow], a, None)
    assert fast.tobytes() == slow.tobytes()
