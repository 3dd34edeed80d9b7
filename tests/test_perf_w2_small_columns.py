"""Columns of 1/4 to 1 ``COLUMN_CHUNK_BYTES`` (LeNet's conv2) are not kept from the forward pass
for the filter gradient: the forward makes them half the batch at a time into a half-sized
workspace, the filter gradient makes its own (a FILLED flag for them is ignored); both agree
with the NCHW kernels in float64, and W2's train arena stays small."""

from __future__ import annotations

import itertools
import os
import tracemalloc

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.opset import conv
from todkit.opset.registry import WORKSPACE_FILLED

CASES = list(itertools.product([1, 2, 5], [(3, 3), (5, 5)], [(1, 1), (2, 2)], ["valid", "same"]))


def _attrs(kernel, stride, pad_mode, o=4):
    return dict(out_channel=o, kernel_size=kernel, mode=1, pad_mode=pad_mode,
                pad_list=(0, 0, 0, 0), stride=stride, dilation=(1, 1), group=1, format="NHWC")


@pytest.mark.parametrize("n,kernel,stride,pad_mode", CASES)
def test_half_batch_forward_and_own_filter_columns(n, kernel, stride, pad_mode, monkeypatch):
    rng = np.random.default_rng(n * 10 + kernel[0])
    a = _attrs(kernel, stride, pad_mode)
    x = rng.standard_normal((n, 11, 10, 8))
    w = rng.standard_normal((4, *kernel, 8))
    geo = conv._Geo(x.shape, w.shape, a)
    (kh, kw), (oh, ow) = geo.khw, geo.ohw
    size = n * oh * ow * kh * kw * 8 * 8
    monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", 2 * size)  # in [chunk / 4, chunk)
    assert conv._small_columns(geo, 8) and conv._halves(geo, 8) == (n > 1)
    whole = conv.conv_workspace(x.shape, w.shape, a, dtypes.float64)
    ws = conv.conv_workspace(x.shape, w.shape, a, dtypes.float64, forward=True)
    assert ws[1].shape[0] == whole[1].shape[0] // n * -(-n // 2)
    scratch = [np.full(t.shape, np.nan) for t in ws]
    y = np.full((n, *geo.ohw, 4), np.nan)
    tracemalloc.start()
    conv._conv_forward(x, w, y, a, [y, *scratch])
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    if n > 1:  # the half-sized workspace was enough: no column-sized allocation
        assert peak < whole[1].shape[0] * 8 // 2
    xn = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    yn = np.empty((n, 4, *geo.ohw))
    wn = np.ascontiguousarray(w.transpose(0, 3, 1, 2))
    conv._conv_forward(xn, wn, yn, dict(a, format="NCHW"))
    np.testing.assert_allclose(y, yn.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)
    # A filter gradient told the (half-made) columns are filled makes its own anyway.
    dy = rng.standard_normal(y.shape)
    dw = np.full(w.shape, np.nan)
    conv._conv_backprop_filter(dy, x, dw, {**a, WORKSPACE_FILLED: frozenset({1})},
                               [dw, *[np.full(t.shape, np.nan) for t in whole]])
    dwn = np.empty((4, 8, *kernel))
    conv._conv_backprop_filter(np.ascontiguousarray(dy.transpose(0, 3, 1, 2)), xn, dwn,
                               dict(a, format="NCHW"))
    np.testing.assert_allclose(dw, dwn.transpose(0, 2, 3, 1), rtol=1e-12, atol=1e-12)


BENCH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "bench")


def test_w2_train_arena_stays_small(tmp_path, monkeypatch):
    """LeNet5 (W2) as the bench exports and converts it: 7.6 MB of train arena with both
    layers' columns kept alive for their filter gradients, ~3.0 MB now."""
    monkeypatch.syspath_prepend(BENCH)
    import fw_todkit
    from workloads import WORKLOADS

    from todkit.formats import ms
    from todkit.runtime.session import Session

    fw_todkit.prepare(WORKLOADS["W2"], str(tmp_path), "todkit")
    s = Session(ms.read(str(tmp_path / "todkit_W2.ms")).graph)
    assert s.arena.nbytes < 3.2e6


def test_half_batch_forward_into_a_non_contiguous_output(monkeypatch):
    """Every other sample of a bigger array: the whole-batch path, the same numbers."""
    rng = np.random.default_rng(11)
    a = _attrs((3, 3), (1, 1), "same")
    x = rng.standard_normal((4, 9, 9, 8))
    w = rng.standard_normal((4, 3, 3, 8))
    monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", 2 * 4 * 81 * 72 * 8)
    ws = conv.conv_workspace(x.shape, w.shape, a, dtypes.float64, forward=True)
    big = np.full((8, 9, 9, 4), 5.0)
    conv._conv_forward(x, w, big[::2], a, [big[::2], *[np.full(t.shape, np.nan) for t in ws]])
    want = np.empty((4, 9, 9, 4))
    conv._conv_forward(x, w, want, a)
    np.testing.assert_allclose(big[::2], want, rtol=1e-12, atol=1e-12)
    assert (big[1::2] == 5.0).all()
