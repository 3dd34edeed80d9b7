"""Convolutions on maps smaller than their kernel (issue 6, W6's 2x2 layers) run as one dense
product with the weight spread over (input pixel, output pixel) pairs (``conv._toeplitz``):
the forward, input-gradient and filter-gradient kernels must compute what the im2col path
computes, to float rounding, and the 2-thread filter pieces what the kernel computes."""

from __future__ import annotations

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import conv
from todkit.opset.registry import OPS
from todkit.runtime.workers import ranges

GEOMETRIES = [  # NHWC x shape, O, kernel, stride, dilation, pad_list
    ((4, 2, 2, 6), 5, 3, 1, 1, (1, 1, 1, 1)),  # ResNet18's 2x2 layers
    ((3, 2, 3, 4), 6, 3, 1, 1, (1, 1, 1, 1)),
    ((2, 2, 4, 3), 4, 3, 1, 1, (1, 1, 1, 1)),  # pixels outside some windows: zero blocks
    ((2, 3, 3, 3), 4, 5, 1, 1, (2, 2, 2, 2)),
    ((2, 3, 3, 4), 4, 5, 2, 1, (2, 2, 2, 2)),  # stride 2
    ((3, 2, 2, 4), 3, 3, 1, 1, (1, 1, 1, 1)),
]


def _case(shape, o, k, s, d, pads, seed=0):
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "out_channel": o, "kernel_size": (k, k),
         "stride": (s, s), "dilation": (d, d), "pad_mode": "pad", "pad_list": pads}
    rng = np.random.default_rng(seed + sum(shape))
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((o, k, k, shape[3])).astype(np.float32)
    t = TensorType(x.shape, dtypes.float32), TensorType(w.shape, dtypes.float32)
    (y,) = OPS["Conv2D"].infer(list(t), a)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    ia = {**a, "input_sizes": (shape[0], shape[3], shape[1], shape[2])}
    fa = {**a, "filter_sizes": (o, shape[3], k, k)}
    return a, ia, fa, x, w, dy, y.shape


def _workspaces(op, ins, attrs):
    types = OPS[op].workspace_types([TensorType(v.shape, dtypes.float32) for v in ins], attrs)
    return [np.full(t.shape, np.nan, np.float32) for t in types]


def _run_all(a, ia, fa, x, w, dy, y_shape):
    y, dx, dw = (np.full(s, np.nan, np.float32) for s in (y_shape, x.shape, w.shape))
    OPS["Conv2D"].kernel([x, w], [y, *_workspaces("Conv2D", [x, w], a)], a, None)
    OPS["Conv2DBackpropInput"].kernel(
        [dy, w], [dx, *_workspaces("Conv2DBackpropInput", [dy, w], ia)], ia, None)
    OPS["Conv2DBackpropFilter"].kernel(
        [dy, x], [dw, *_workspaces("Conv2DBackpropFilter", [dy, x], fa)], fa, None)
    return y, dx, dw


@pytest.fixture
def im2col(monkeypatch):
    """Switches the dense path off (and forgets geometries decided with it on)."""
    def off():
        monkeypatch.setattr(conv, "TOEPLITZ_MAX_VALUES", 0)
        conv._GEO_CACHE.clear()
    yield off
    conv._GEO_CACHE.clear()


@pytest.mark.parametrize("shape,o,k,s,d,pads", GEOMETRIES)
def test_dense_kernels_equal_im2col(shape, o, k, s, d, pads, im2col):
    case = _case(shape, o, k, s, d, pads)
    conv._GEO_CACHE.clear()
    assert conv._toeplitz(conv._live(shape, case[4].shape, case[0])[1]) is not None
    got = _run_all(*case)
    im2col()
    assert conv._toeplitz(conv._live(shape, case[4].shape, case[0])[1]) is None
    want = _run_all(*case)
    for g, w_, name in zip(got, want, ("y", "dx", "dw")):
        np.testing.assert_allclose(g, w_, rtol=1e-5, atol=1e-5, err_msg=name)


@pytest.mark.parametrize("shape,o,k,s,d,pads", GEOMETRIES)
@pytest.mark.parametrize("parts", [2, 3])
def test_filter_pieces_by_channels_equal_the_kernel(shape, o, k, s, d, pads, parts):
    _, _, fa, x, w, dy, _ = _case(shape, o, k, s, d, pads, seed=1)
    want = np.empty(w.shape, np.float32)
    OPS["Conv2DBackpropFilter"].kernel(
        [dy, x], [want, *_workspaces("Conv2DBackpropFilter", [dy, x], fa)], fa, None)
    got = np.full(w.shape, np.nan, np.float32)
    ws = _workspaces("Conv2DBackpropFilter", [dy, x], fa)
    columns, products = conv.filter_pieces(dy, x, got, fa, [got, *ws],
                                           ranges(shape[0], parts), ranges(o, parts))
    assert columns == [] and len(products) == min(parts, o)
    for task in reversed(products):
        task()
    # (BLAS rounds a product's row by its position: the channel cuts move rows)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_maps_as_large_as_the_kernel_keep_im2col():
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "out_channel": 4, "kernel_size": (3, 3),
         "pad_mode": "pad", "pad_list": (1, 1, 1, 1)}
    assert conv._toeplitz(conv._Geo((2, 3, 3, 4), (4, 3, 3, 4), a)) is None  # 9 pixels
    assert conv._toeplitz(conv._Geo((2, 2, 2, 4), (4, 3, 3, 4), a)) is not None
    nchw = conv._Geo((2, 4, 2, 2), (4, 4, 3, 3), {**a, "format": "NCHW"})
    assert conv._toeplitz(nchw) is None  # the front end's NCHW kernels keep their paths
    big = conv._Geo((2, 2, 2, 2048), (2048, 3, 3, 2048), {**a, "out_channel": 2048})
    assert conv._toeplitz(big) is None  # a spread weight above TOEPLITZ_MAX_VALUES
    ws = conv.conv_workspace((2, 2, 2, 4), (4, 3, 3, 4), a, dtypes.float32)
    assert [t.shape for t in ws] == [(0,), (2 * 2 * 4 * 2 * 2 * 4,)]
