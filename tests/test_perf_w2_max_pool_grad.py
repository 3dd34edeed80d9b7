"""The tiled MaxPoolGrad (todkit/opset/pool.py ``_tiled_max_pool_grad``: tap-major planes in
the output's own buffer, NHWC windows copied as opaque C-channel items) is bit for bit the
general path: ties (ReLU zeros), signed zeros, infinities, NaN maxima, odd sizes, both
layouts, planned scratch holding garbage, a non-contiguous output."""

from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import pool
from todkit.opset.registry import get_op

SHAPES = [((4, 8, 8, 3), 2), ((3, 7, 9, 5), 2), ((2, 9, 9, 2), 3), ((2, 6, 8, 16), 2),
          ((1, 5, 4, 1), 2), ((2, 12, 12, 6), 4), ((2, 6, 6, 3), 1)]


def _case(shape, k, fmt, seed, special):
    rng = np.random.default_rng(seed)
    x = np.maximum(rng.integers(-3, 3, size=shape), 0).astype(np.float32)  # many ties
    x.reshape(-1)[1::7] *= -0.0  # signed zeros tie with zeros
    if special == "inf":
        x.reshape(-1)[::11] = np.inf
        x.reshape(-1)[5::13] = -np.inf
    if special == "nan":
        x.reshape(-1)[3] = np.nan
    if fmt == "NCHW":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    a = dict(kernel_size=(k, k), strides=(k, k), pad_mode="valid", format=fmt)
    y_shape = pool.pooled_type(TensorType(x.shape, dtypes.float32), a).shape
    y = np.empty(y_shape, np.float32)
    get_op("MaxPool").kernel([x], [y], a, None)
    dy = rng.standard_normal(y_shape).astype(np.float32)
    dy.reshape(-1)[:3] = [-0.0, 0.0, -1.0]
    if special == "dy":
        dy.reshape(-1)[-3:] = [np.inf, -np.inf, np.nan]
    return x, y, dy, a


def _general(x, y, dy, a, monkeypatch):
    with monkeypatch.context() as m:
        m.setattr(pool, "_tiled_max_pool_grad", lambda *args: False)
        out = np.full_like(x, 7.0)
        get_op("MaxPoolGrad").kernel([x, y, dy], [out], a, None)
    return out


def _planned(x, y, a):
    types = get_op("MaxPoolGrad").workspace_types(
        [TensorType(x.shape, dtypes.float32), TensorType(y.shape, dtypes.float32)] * 1
        + [TensorType(y.shape, dtypes.float32)], a)
    return [np.ones(t.shape, t.dtype.np) for t in types]  # garbage: all True / ones


@pytest.mark.parametrize("special", ["", "inf", "nan", "dy"])
@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("shape,k", SHAPES)
def test_tiled_equals_general_bit_for_bit(shape, k, fmt, special, monkeypatch):
    x, y, dy, a = _case(shape, k, fmt, seed=sum(shape) * k, special=special)
    want = _general(x, y, dy, a, monkeypatch)
    planned = np.full_like(x, 7.0)
    get_op("MaxPoolGrad").kernel([x, y, dy], [planned, *_planned(x, y, a)], a, None)
    assert planned.tobytes() == want.tobytes()
    fresh = np.full_like(x, 7.0)
    get_op("MaxPoolGrad").kernel([x, y, dy], [fresh], a, None)
    assert fresh.tobytes() == want.tobytes()
    # A non-contiguous output (every other sample of a bigger array) gets fresh planes.
    big = np.full((2 * x.shape[0],) + x.shape[1:], 7.0, np.float32)
    get_op("MaxPoolGrad").kernel([x, y, dy], [big[::2]], a, None)
    assert np.ascontiguousarray(big[::2]).tobytes() == want.tobytes()
    assert (big[1::2] == 7.0).all()


def test_pool1_of_lenet_allocates_no_planes():
    """The planes live in the output: the planned call allocates only the NaN and
    finiteness checks' masks (dy-sized bools), not x-sized planes."""
    x, y, dy, a = _case((32, 28, 28, 6), 2, "NHWC", seed=1, special="")
    ws = _planned(x, y, a)
    assert sum(w.nbytes for w in ws) < x.nbytes  # scratch smaller than one input
    out = np.empty_like(x)
    get_op("MaxPoolGrad").kernel([x, y, dy], [out, *ws], a, None)
    tracemalloc.start()
    get_op("MaxPoolGrad").kernel([x, y, dy], [out, *ws], a, None)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < x.nbytes // 4


@pytest.mark.parametrize("special", ["", "inf", "nan"])
@pytest.mark.parametrize("shape,k", SHAPES)
def test_tiled_max_pool_forward_equals_tap_loop(shape, k, special, monkeypatch):
    """MaxPool of NHWC tiles (tap-major planes, one reduction) against the per-tap loop:
    the same bits, signed zeros and NaN included."""
    x, y, _, a = _case(shape, k, "NHWC", seed=sum(shape) + k, special=special)
    types = get_op("MaxPool").workspace_types([TensorType(x.shape, dtypes.float32)], a)
    assert len(types) == 1
    for scratch in ([np.full(types[0].shape, np.nan, np.float32)], []):
        out = np.full_like(y, 7.0)
        get_op("MaxPool").kernel([x], [out, *scratch], a, None)
        with monkeypatch.context() as m:
            m.setattr(pool, "_tiled_max_pool", lambda *args: False)
            want = np.full_like(y, 7.0)
            get_op("MaxPool").kernel([x], [want], a, None)
        assert out.tobytes() == want.tobytes()


@pytest.mark.parametrize("pad_mode", ["valid", "same"])
@pytest.mark.parametrize("special", ["", "inf"])
def test_overlapping_windows_with_planned_scratch_equal_fresh_arrays(pad_mode, special):
    """ResNet's 3x3/2 pool: the overlapping path with the planned workspaces (holding
    garbage) and, without padding, summing straight into the output (holding garbage) is
    bit for bit the path with fresh arrays."""
    rng = np.random.default_rng(4)
    x = np.maximum(rng.integers(-3, 3, size=(2, 9, 9, 4)), 0).astype(np.float32)
    if special == "inf":
        x.reshape(-1)[::11] = np.inf
    a = dict(kernel_size=(3, 3), strides=(2, 2), pad_mode=pad_mode, format="NHWC")
    t = TensorType(x.shape, dtypes.float32)
    y = np.empty(pool.pooled_type(t, a).shape, np.float32)
    get_op("MaxPool").kernel([x], [y], a, None)
    dy = rng.standard_normal(y.shape).astype(np.float32)
    fresh = np.full_like(x, 7.0)
    get_op("MaxPoolGrad").kernel([x, y, dy], [fresh], a, None)
    types = get_op("MaxPoolGrad").workspace_types([t, t, t], a)
    assert len(types) == 4
    ws = [np.full(w.shape, 1, w.dtype.np) for w in types]
    planned = np.full_like(x, np.nan)
    get_op("MaxPoolGrad").kernel([x, y, dy], [planned, *ws], a, None)
    np.testing.assert_array_equal(planned.view(np.uint32), fresh.view(np.uint32))
