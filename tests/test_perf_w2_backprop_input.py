"""NHWC Conv2DBackpropInput by row blocks (``_backprop_input_row_blocks`` in
todkit/opset/conv.py: bx neighbouring dy pixels times a banded weight matrix per kernel row)
gives the per-tap path's input gradient: float64 comparisons over strides, dilations, pads,
odd widths, trimmed kernels and planned or fresh scratch; non-finite dy takes the per-tap path."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.opset import conv

GEOMETRIES = [g for g in itertools.product(
    [1, 3, 6],                # input channels
    [(3, 3), (5, 5), (2, 3)],  # kernel
    [(1, 1), (2, 2), (1, 2)],  # stride
    [(1, 1), (2, 1)],          # dilation
    ["valid", "same", (1, 0, 2, 1)],
    [(9, 10), (7, 13)],        # input height, width
)]


def _attrs(c_out, kernel, stride, dilation, pads):
    mode, pad_list = (pads, (0, 0, 0, 0)) if isinstance(pads, str) else ("pad", pads)
    return dict(out_channel=c_out, kernel_size=kernel, mode=1, pad_mode=mode,
                pad_list=pad_list, stride=stride, dilation=dilation, group=1, format="NHWC")


def _both(x_shape, w, dy, a, planned):
    """(row-block dx, per-tap dx) of one geometry."""
    ws = conv.conv_workspace(x_shape, w.shape, a, dtypes.float64, taps=False)
    outs = []
    for rows in (True, False):
        dx = np.full(x_shape, np.nan)
        scratch = [np.full(t.shape, np.nan) for t in ws] if planned else []
        if rows:
            conv._conv_backprop_input(dy, w, dx, a, [dx, *scratch])
        else:
            saved = conv._row_block
            conv._row_block = lambda geo: 0
            try:
                conv._conv_backprop_input(dy, w, dx, a, [dx, *scratch])
            finally:
                conv._row_block = saved
        outs.append(dx)
    return outs


@pytest.mark.parametrize("c,kernel,stride,dilation,pads,hw", GEOMETRIES)
def test_row_blocks_equal_per_tap(c, kernel, stride, dilation, pads, hw):
    rng = np.random.default_rng(abs(hash((c, kernel, stride, dilation, str(pads), hw))) % 2**32)
    a = _attrs(4, kernel, stride, dilation, pads)
    x_shape = (2, *hw, c)
    w = rng.standard_normal((4, *kernel, c))
    try:
        _, (oh, ow) = conv.conv_geometry(x_shape, w.shape, a)
    except ValueError:
        pytest.skip("window larger than the input")
    dy = rng.standard_normal((2, oh, ow, 4))
    fast, slow = _both(x_shape, w, dy, a, planned=bool(sum(kernel) % 2))
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


def test_w2_conv2_takes_row_blocks():
    a = _attrs(16, (5, 5), (1, 1), (1, 1), "valid")
    geo = conv._Geo((32, 14, 14, 6), (16, 5, 5, 6), a)
    assert conv._row_block(geo) == 5
    wide = conv._Geo((32, 16, 16, 64), (64, 3, 3, 64), _attrs(64, (3, 3), (1, 1), (1, 1),
                                                                "same"))
    assert conv._row_block(wide) == 0  # ResNet's layers keep their per-tap products


def test_trimmed_kernel_takes_row_blocks():
    """A 3x3 at pad 1 over 2x2 maps at stride 2 is cut to its live taps first."""
    rng = np.random.default_rng(3)
    a = _attrs(4, (3, 3), (2, 2), (1, 1), (1, 1, 1, 1))
    w = rng.standard_normal((4, 3, 3, 2))
    dy = rng.standard_normal((2, 1, 1, 4))
    fast, slow = _both((2, 2, 2, 2), w, dy, a, planned=True)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bad", [np.inf, -np.inf, np.nan])
def test_non_finite_dy_or_w_is_the_per_tap_result(bad):
    """Inf times the band's zeros would be NaN where the per-tap sum is not."""
    rng = np.random.default_rng(4)
    a = _attrs(3, (3, 3), (1, 1), (1, 1), "valid")
    w = rng.standard_normal((3, 3, 3, 2))
    dy = rng.standard_normal((2, 6, 6, 3))
    dy[1, 2, 3, 1] = bad
    fast, slow = _both((2, 8, 8, 2), w, dy, a, planned=True)
    np.testing.assert_array_equal(fast, slow)
    w[0, 1, 1, 0] = bad
    fast, slow = _both((2, 8, 8, 2), w, rng.standard_normal((2, 6, 6, 3)), a, planned=True)
    np.testing.assert_array_equal(fast, slow)


def test_cached_geometry_follows_every_attribute():
    """``_geo`` caches per shapes and attributes: a changed stride, dilation, pad or format
    never reuses another call's geometry."""
    base = _attrs(4, (3, 3), (1, 1), (1, 1), "same")
    variants = [base, dict(base, stride=(2, 2)), dict(base, dilation=(2, 1)),
                dict(base, pad_mode="valid"), dict(base, pad_mode="pad", pad_list=(1, 0, 0, 1)),
                dict(base, pad_list=[0, 1, 1, 0], pad_mode="pad")]
    for a in variants * 2:
        got = conv._geo((2, 9, 10, 3), (4, 3, 3, 3), a)
        want = conv._Geo((2, 9, 10, 3), (4, 3, 3, 3), a)
        assert (got.pads, got.ohw, got.stride, got.dilation) == (want.pads, want.ohw,
                                                                  want.stride, want.dilation)
    nchw = conv._geo((2, 3, 9, 10), (4, 3, 3, 3), dict(base, format="NCHW"))
    assert not nchw.lay.nhwc and nchw.hw == (9, 10)
