"""NHWC convolutions whose outer kernel taps only read padding run with the kernel cut to
its live taps (todkit/opset/conv.py ``_trimmed``): forward, input and filter gradients equal
the full-kernel computation (float64, to rounding), and dead taps get a zero gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from todkit.opset import conv


def _attrs(k, s, d, pad):
    return {"format": "NHWC", "group": 1, "stride": (s, s), "dilation": (d, d),
            "pad_mode": "pad", "pad_list": pad, "kernel_size": (k, k), "out_channel": 4,
            "mode": 1}


def _valid(h, wd, k, s, d, pad):
    try:
        conv.conv_geometry((2, h, wd, 3), (4, k, k, 3), _attrs(k, s, d, pad))
    except ValueError:
        return False
    return True


CASES = [c for c in itertools.product([1, 2, 3], [1, 2], [3, 5], [1, 2], [1, 2],
                                      [(1, 1, 1, 1), (2, 2, 2, 2), (0, 1, 0, 1), (2, 0, 1, 1)])
         if _valid(*c)]


def _run(x, w, dy, a):
    _, (oh, ow) = conv.conv_geometry(x.shape, w.shape, a)
    y = np.empty((x.shape[0], oh, ow, w.shape[0]))
    conv._conv_forward(x, w, y, a)
    dx = np.empty_like(x)
    conv._conv_backprop_input(dy(y.shape), w, dx, a)
    dw = np.full_like(w, 7.0)  # every element must be written
    conv._conv_backprop_filter(dy(y.shape), x, dw, a)
    return y, dx, dw


@pytest.mark.parametrize("h,wd,k,s,d,pad", CASES)
def test_cut_kernel_equals_full_kernel(h, wd, k, s, d, pad, monkeypatch):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, h, wd, 3))
    w = rng.standard_normal((4, k, k, 3))
    a = _attrs(k, s, d, pad)
    g = np.random.default_rng(1).standard_normal(64 * 4 * 9)

    def dy(shape):
        return g[:int(np.prod(shape))].reshape(shape)
    got = _run(x, w, dy, a)
    monkeypatch.setattr(conv, "_trimmed", lambda geo, a: None)
    want = _run(x, w, dy, a)
    for u, v in zip(got, want):
        np.testing.assert_allclose(u, v, rtol=1e-12, atol=1e-12)


def test_resnet_last_stage_is_cut_to_the_centre_tap():
    a = {"format": "NHWC", "group": 1, "stride": (1, 1), "dilation": (1, 1),
         "pad_mode": "pad", "pad_list": (1, 1, 1, 1), "kernel_size": (3, 3),
         "out_channel": 8, "mode": 1}
    geo = conv._Geo((2, 1, 1, 8), (8, 3, 3, 8), a)
    (i0, i1), (j0, j1), cut = conv._trimmed(geo, a)
    assert (i0, i1, j0, j1) == (1, 2, 1, 2)
    assert cut["kernel_size"] == (1, 1) and cut["pad_list"] == (0, 0, 0, 0)
