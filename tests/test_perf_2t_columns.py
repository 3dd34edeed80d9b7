"""Two threads, the trained convolutions (issue 6, W6's 2-thread cell): a forward convolution
whose im2col columns its filter gradient reads, and the filter gradient itself, run as pieces
on the pool (``conv.forward_pieces``: columns and products by samples, each piece its own
rows of the shared columns; ``conv.filter_pieces``: columns by samples unless the forward
filled them, then products by output channels). Before, such a call stayed whole and turned
all splitting off (``rewrite_parallel._blas_left``). The pieces compute every output element
as the one call does; BLAS rounds a product's rows by their position, so the results equal
one thread's to float rounding."""

from __future__ import annotations

import numpy as np
import pytest

from tests.lite_models import device_model, export_converted, train_losses
from tests.test_perf_2t_parallel import (
    _split_calls,
    _state,
    small,  # noqa: F401  (autouse: every call is split, BLAS at one thread)
)
from todkit import nn
from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import conv
from todkit.opset.registry import OPS, WORKSPACE_FILLED
from todkit.runtime import rewrite_parallel
from todkit.runtime.workers import ranges


class _Stages(nn.Cell):
    """Every filter-gradient path: 3x3 'same' (columns the forward fills), 1x1 (the input is
    the columns), 1x1 at stride 2 (columns), 3x3/2 down to 2x2, a 3x3 on that 2x2 map (one
    dense product, ``conv._toeplitz``), 3x3/2 down to 1x1 and a 3x3 on 1x1 (the kernel cut
    to its live taps, ``conv._trimmed``; the last one then 1x1)."""

    def __init__(self):
        super().__init__()
        self.c1 = nn.Conv2d(3, 8, 3, pad_mode="same")
        self.c2 = nn.Conv2d(8, 8, 1)
        self.c3 = nn.Conv2d(8, 16, 1, stride=2)
        self.c4 = nn.Conv2d(16, 16, 3, stride=2, pad_mode="pad", padding=1)
        self.c45 = nn.Conv2d(16, 16, 3, pad_mode="pad", padding=1)
        self.c5 = nn.Conv2d(16, 16, 3, stride=2, pad_mode="pad", padding=1)
        self.c6 = nn.Conv2d(16, 16, 3, pad_mode="pad", padding=1)
        self.relu = nn.ReLU()
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(16, 5)

    def construct(self, x):
        for c in (self.c1, self.c2, self.c3, self.c4, self.c45, self.c5, self.c6):
            x = self.relu(c(x))
        return self.fc(self.flatten(x))


def _train(tmp_path, threads_list, steps=3):
    import todkit as M

    M.set_seed(5)
    rng = np.random.default_rng(2)
    x = rng.standard_normal((6, 3, 8, 8)).astype(np.float32)
    y = rng.integers(0, 5, 6).astype(np.int32)
    path = export_converted(tmp_path, _Stages(), x, y)
    runs = []
    for threads in threads_list:
        model = device_model(path, x, y, threads)
        runs.append((model.session, train_losses(model, steps), _state(model.session)))
    return runs


@pytest.mark.parametrize("small_columns", [False, True])
def test_trained_convolutions_split_and_equal_one_thread(tmp_path, monkeypatch, small_columns):
    if small_columns:  # most layers' columns are then "small" (conv._small_columns): their
        monkeypatch.setattr(conv, "COLUMN_CHUNK_BYTES", 4096)  # filter gradients remake them
    one, two, three = _train(tmp_path, (1, 2, 3))
    for run in (two, three):
        ops = _split_calls(run[0].train)
        assert ops.count("Conv2DBackpropFilter") == 7, ops
        assert ops.count("Conv2D") >= 7, ops
        np.testing.assert_allclose(run[1], one[1], rtol=1e-5)
        for k, v in one[2].items():
            np.testing.assert_allclose(run[2][k], v, rtol=1e-4, atol=1e-6, err_msg=k)
    ex = two[0].train
    filters = [s for s, n in enumerate(ex.nodes) if n.op == "Conv2DBackpropFilter"]
    remade = [s for s in filters if not rewrite_parallel._shares_workspace(ex, s)
              and ex.nodes[s].inputs[1].type.shape[1:3] == (8, 8)]  # c2 (1x1) and c3 (1x1/2)
    assert len(remade) == (2 if small_columns else 1)


def test_small_column_products_stay_whole_and_blas_threaded(tmp_path, monkeypatch):
    """Below ``COLUMNS_SPLIT_PRODUCTS`` (LeNet-sized products) the column-sharing calls stay
    whole; a product at or above ``BLAS_LEFT_PRODUCTS`` among them then keeps the whole step
    on BLAS's threads, as before."""
    monkeypatch.setattr(rewrite_parallel, "COLUMNS_SPLIT_PRODUCTS", 1 << 30)
    monkeypatch.setattr(rewrite_parallel, "BLAS_LEFT_PRODUCTS", 1)
    (two,) = _train(tmp_path, (2,), steps=1)
    assert _split_calls(two[0].train) == []


# -- the pieces against the kernels ----------------------------------------------------------
GEOMETRIES = [  # NHWC x shape, O, kernel, stride, pad_list
    ((5, 8, 8, 3), 8, 3, 1, (1, 1, 1, 1)),
    ((5, 7, 6, 4), 6, 3, 2, (0, 1, 0, 1)),
    ((4, 8, 8, 8), 16, 1, 2, (0, 0, 0, 0)),
    ((4, 6, 6, 8), 7, 1, 1, (0, 0, 0, 0)),
    ((3, 2, 2, 16), 9, 3, 2, (1, 1, 1, 1)),  # cut to the live taps
    ((3, 1, 1, 16), 9, 3, 1, (1, 1, 1, 1)),  # cut to the centre: 1x1
]


def _case(shape, o, k, s, pads):
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "out_channel": o, "kernel_size": (k, k),
         "stride": (s, s), "pad_mode": "pad", "pad_list": pads}
    rng = np.random.default_rng(sum(shape) + o)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((o, k, k, shape[3])).astype(np.float32)
    (t,) = OPS["Conv2D"].infer([TensorType(x.shape, dtypes.float32),
                                TensorType(w.shape, dtypes.float32)], a)
    dy = rng.standard_normal(t.shape).astype(np.float32)
    ws = [np.full(wt.shape, np.nan, np.float32) for wt in OPS["Conv2D"].workspace_types(
        [TensorType(x.shape, dtypes.float32), TensorType(w.shape, dtypes.float32)], a)]
    return a, x, w, dy, t, ws


def _run(tasks):
    for task in tasks:
        task()


@pytest.mark.parametrize("shape,o,k,s,pads", GEOMETRIES)
@pytest.mark.parametrize("parts", [2, 3])
def test_forward_then_filter_pieces_equal_the_kernels(shape, o, k, s, pads, parts):
    a, x, w, dy, t, ws = _case(shape, o, k, s, pads)
    want = np.empty(t.shape, np.float32)
    OPS["Conv2D"].kernel([x, w], [want], a, None)
    dw_want = np.empty(w.shape, np.float32)
    fa = {**a, "filter_sizes": (o, shape[3], k, k)}
    OPS["Conv2DBackpropFilter"].kernel([dy, x], [dw_want], fa, None)

    samples, channels = ranges(shape[0], parts), ranges(o, parts)
    got = np.full(t.shape, np.nan, np.float32)
    tasks = conv.forward_pieces(x, w, got, a, [got, *ws], samples)
    assert tasks is not None and len(tasks) == parts
    _run(reversed(tasks))  # any order: each piece writes only its own samples
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    for filled in (True, False):  # the forward's columns read, or remade by samples
        dw = np.full(w.shape, np.nan, np.float32)
        ws_f = ws if filled else [np.full_like(v, np.nan) for v in ws]
        attrs = {**fa, WORKSPACE_FILLED: frozenset({1})} if filled else fa
        columns, products = conv.filter_pieces(dy, x, dw, attrs, [dw, *ws_f], samples,
                                               channels)
        assert len(products) == parts
        _run(reversed(columns))
        _run(reversed(products))
        np.testing.assert_allclose(dw, dw_want, rtol=1e-4, atol=1e-4)


def test_no_pieces_where_the_kernels_take_another_path():
    a, x, w, dy, t, ws = _case((2, 6, 6, 1), 4, 3, 1, (1, 1, 1, 1))  # one input channel
    out = np.empty(t.shape, np.float32)
    assert conv.forward_pieces(x, w, out, a, [out, *ws], [(0, 1), (1, 2)]) is None
    fa = {**a, "filter_sizes": (4, 1, 3, 3)}
    dw = np.empty(w.shape, np.float32)
    assert conv.filter_pieces(dy, x, dw, fa, [dw, *ws], [(0, 1), (1, 2)], [(0, 2), (2, 4)]) \
        is None
    a, x, w, dy, t, ws = _case((2, 6, 6, 4), 4, 3, 1, (1, 1, 1, 1))
    out = np.empty(t.shape, np.float32)
    filled = {**a, WORKSPACE_FILLED: frozenset({1})}  # another node made the columns
    assert conv.forward_pieces(x, w, out, filled, [out, *ws], [(0, 1), (1, 2)]) is None
    assert conv.forward_pieces(x, w, out, a, [out], [(0, 1), (1, 2)]) is None  # no workspace
    # A strided dy: its reshape would be a copy made once, stale at the next call.
    fa = {**a, "filter_sizes": (4, 4, 3, 3)}
    dw = np.empty(w.shape, np.float32)
    wide = np.zeros(dy.shape[:3] + (8,), np.float32)
    assert conv.filter_pieces(wide[..., ::2], x, dw, fa, [dw, *ws], [(0, 1), (1, 2)],
                              [(0, 2), (2, 4)]) is None


@pytest.mark.parametrize("shape,o,k,s,pads", [
    ((3, 2, 2, 16), 9, 3, 1, (1, 1, 1, 1)),  # a 2x2 map: one dense product
    ((3, 1, 1, 16), 9, 3, 1, (1, 1, 1, 1)),  # cut to the centre tap
])
@pytest.mark.parametrize("parts", [2, 3])
def test_channel_pieces_equal_the_kernel(shape, o, k, s, pads, parts):
    """Weight-bound forwards (ResNet18's 2x2 and 1x1 layers) by output channels: each piece
    makes only its rows of the spread weight (in its part's scratch) or reads only its rows
    of the live tap."""
    a, x, w, _, t, ws = _case(shape, o, k, s, pads)
    want = np.empty(t.shape, np.float32)
    OPS["Conv2D"].kernel([x, w], [want], a, None)
    scratch = {}

    def part_scratch(part, size):
        assert part not in scratch  # one scratch per part
        scratch[part] = np.full(size, np.nan, np.float32)
        return scratch[part]
    got = np.full(t.shape, np.nan, np.float32)
    tasks = conv.channel_pieces(x, w, got, a, [got, *ws], ranges(o, parts), part_scratch)
    assert tasks is not None and len(tasks) == parts
    _run(reversed(tasks))
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_no_channel_pieces_for_convolutions_with_columns():
    a, x, w, _, t, ws = _case((2, 6, 6, 4), 4, 3, 1, (1, 1, 1, 1))
    out = np.empty(t.shape, np.float32)
    assert conv.channel_pieces(x, w, out, a, [out, *ws], [(0, 2), (2, 4)], None) is None
