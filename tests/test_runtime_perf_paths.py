"""The performance engineer's build-time decisions keep results and files unchanged: nodes
nobody reads are skipped at build (the export still writes them), Context.thread_num is the
session's BLAS thread count, the feature cache keyed by ArrayDataset indices trains as the
uncached model does."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_lite_export import transfer_files
from tests.test_runtime_graphs import BATCH, IN, OUT, train_graph
from todkit import lite
from todkit.core import dtypes
from todkit.formats import ms
from todkit.ir.graph import TensorType
from todkit.opset import conv, emit
from todkit.opset.registry import OPS
from todkit.runtime.session import Session


def with_dead_transpose():
    g = train_graph("momentum")
    w = g.value("fc.weight")
    emit(g, "Transpose", [w], {"perm": (1, 0)}, name="fc.weight_post_perm")
    return g


def test_unread_nodes_are_skipped_and_the_rest_trains_the_same(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH, IN)).astype(np.float32)
    y = rng.integers(0, OUT, BATCH).astype(np.int32)
    weights = []
    for g in (train_graph("momentum"), with_dead_transpose()):
        s = Session(g)
        assert all(n.op != "Transpose" for n in s.train.nodes)
        for v, a in zip(s.inputs, (x, y)):
            s.train.array(v)[...] = a
        for _ in range(3):
            s.run_step()
        weights.append(g.value("fc.weight").data.copy())
    np.testing.assert_array_equal(weights[0], weights[1])
    assert len(s.skipped_nodes) == 1
    # The file keeps the node: a train export writes the graph as it was read.
    ms.write(with_dead_transpose(), tmp_path / "t.ms")
    model = lite.Model()
    model.build_from_file(tmp_path / "t.ms", train_cfg=lite.TrainCfg())
    model.export(tmp_path / "out.ms")
    again = ms.read(tmp_path / "out.ms").graph
    assert [n.name for n in again.nodes if n.op == "Transpose"] == ["fc.weight_post_perm"]


def test_context_thread_num_is_the_sessions_blas_threads(tmp_path):
    ms.write(train_graph("sgd"), tmp_path / "t.ms")
    for ctx, want in ((None, 1), (lite.Context(), 1), (lite.Context(thread_num=2), 2)):
        model = lite.Model()
        model.build_from_file(tmp_path / "t.ms", context=ctx)
        assert model.session.blas_threads == want


def test_indexed_feature_cache_skips_the_data_and_matches_uncached(tmp_path):
    bb, head = transfer_files(tmp_path)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(16, 5)).astype(np.float32)
    y = rng.integers(0, OUT, 16).astype(np.int32)
    got = {}
    for cache in (False, True):
        model = lite.build_transfer_learning(bb, head, train_cfg=lite.TrainCfg(),
                                             feature_cache=cache)
        ds = lite.ArrayDataset(x, y, batch_size=BATCH, shuffle=True, seed=3)
        model.train(2, ds, [])
        if cache:  # later epochs never load the image input
            model._bb_input.set_data_from_numpy(np.full((BATCH, 5), np.nan, np.float32))
        model.train(2, ds, [])
        got[cache] = (model.head.session.graph.value("fc.weight").data.copy(),
                      model.backbone_runs)
    np.testing.assert_array_equal(got[True][0], got[False][0])
    assert got[False][1] == 4 * 8 and got[True][1] == 8


@pytest.mark.parametrize("shape,k,s,d,pad_mode,pads", [
    ((2, 7, 9, 5), 3, 1, 1, "same", (0, 0, 0, 0)), ((2, 8, 8, 4), 3, 2, 1, "same", (0, 0, 0, 0)),
    ((3, 11, 6, 3), 3, 2, 2, "pad", (2, 1, 0, 3)), ((1, 5, 5, 2), 5, 1, 1, "valid", (0, 0, 0, 0)),
    ((2, 30, 31, 8), 3, 2, 1, "pad", (1, 1, 1, 1)), ((1, 3, 3, 2), 3, 1, 1, "pad", (4, 4, 4, 4))])
def test_blocked_depthwise_nhwc_is_bit_identical_to_whole_batch_taps(shape, k, s, d, pad_mode,
                                                                       pads, monkeypatch):
    monkeypatch.setattr(conv, "DEPTHWISE_BLOCK_BYTES", 64)  # several blocks per sample
    c = shape[3]
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "group": c, "out_channel": c,
         "kernel_size": (k, k), "stride": (s, s), "dilation": (d, d), "pad_mode": pad_mode,
         "pad_list": pads}
    rng = np.random.default_rng(1)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((c, k, k, 1)).astype(np.float32)
    (t,) = OPS["Conv2D"].infer([TensorType(x.shape, dtypes.float32),
                                TensorType(w.shape, dtypes.float32)], a)
    out = np.empty(t.shape, np.float32)
    OPS["Conv2D"].kernel([x, w], [out], a, None)
    geo = conv._Geo(x.shape, w.shape, a)
    xp, want = geo.lay.pad(x, geo.pads), np.zeros_like(out)
    for i, j, tap in geo.taps():
        want += xp[tap] * geo.weight_tap(w, i, j)
    np.testing.assert_array_equal(out, want)


def test_train_export_patches_an_unchanged_file_and_rewrites_a_changed_one(tmp_path):
    src = tmp_path / "t.ms"
    ms.write(train_graph("sgd"), src)
    model = lite.Model()
    model.build_from_file(src, train_cfg=lite.TrainCfg())
    assert model._ms_model.raw is None  # the file's bytes are not kept
    w = model.session.graph.value("fc.weight").data
    w += 1
    model.export(tmp_path / "a.ms")
    ms.write(train_graph("sgd", seed=9), src)  # the source changes after load
    model.export(tmp_path / "b.ms")
    for out in ("a.ms", "b.ms"):
        got = ms.read(tmp_path / out).graph.value("fc.weight").data
        np.testing.assert_array_equal(got, w)


@pytest.mark.parametrize("fmt", ["NHWC", "NCHW"])
@pytest.mark.parametrize("k,s,pad_mode", [(3, 2, "same"), (3, 1, "same"), (2, 1, "valid"),
                                          (3, 2, "valid")])
def test_overlapping_max_pool_grad_is_bit_identical_to_the_scan(fmt, k, s, pad_mode,
                                                               monkeypatch):
    from todkit.opset import pool

    grad = OPS["MaxPoolGrad"]
    a = {**grad.attrs, "kernel_size": (k, k), "strides": (s, s), "pad_mode": pad_mode,
         "format": fmt}
    rng = np.random.default_rng(0)
    shape = (2, 7, 9, 3) if fmt == "NHWC" else (2, 3, 7, 9)
    for trial in range(4):
        x = rng.integers(-2, 3, size=shape).astype(np.float32)  # many ties
        x[x == 2] = np.inf if trial == 1 else 2
        x[x == -2] = -np.inf if trial == 2 else -2
        y = pool.pooled_type(TensorType(shape, dtypes.float32), a).shape
        dy = rng.standard_normal(y).astype(np.float32)
        if trial == 3:
            dy[dy < 0] = -0.0
        got = np.empty_like(x)
        grad.kernel([x, None, dy], [got], a, None)
        with monkeypatch.context() as m:
            m.setattr(pool, "_overlapping_max_pool_grad", lambda *args: False)
            want = np.empty_like(x)
            grad.kernel([x, None, dy], [want], a, None)
        np.testing.assert_array_equal(got, want)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(want))


def test_a_repeated_computation_is_bound_as_a_view_of_the_first():
    from todkit.core import dtypes as dt
    from todkit.ir.graph import Graph
    from todkit.runtime.executor import _no_kernel

    g = Graph("dups")
    x = g.add_input("x", TensorType((2, 3, 4, 5), dt.float32))
    a = emit(g, "Transpose", [x], {"perm": (0, 2, 3, 1)}, name="a").outputs[0]
    b = emit(g, "Transpose", [x], {"perm": (0, 2, 3, 1)}, name="b").outputs[0]
    c = emit(g, "Transpose", [x], {"perm": (0, 3, 1, 2)}, name="c").outputs[0]
    y = emit(g, "Add", [b, b], name="y").outputs[0]
    g.outputs = [a, y, c]
    s = Session(g)
    assert s.eval.aliases[id(b)] is a and id(c) not in s.eval.aliases
    assert s.eval.bound[1][0] is _no_kernel
    xv = np.random.default_rng(0).normal(size=(2, 3, 4, 5)).astype(np.float32)
    s.eval.array(x)[...] = xv
    s.run_step()
    np.testing.assert_array_equal(s.eval.array(y), 2 * xv.transpose(0, 2, 3, 1))
    np.testing.assert_array_equal(s.eval.array(c), xv.transpose(0, 3, 1, 2))


def test_pointwise_nhwc_conv_and_filter_grad_are_bit_identical_to_im2col(monkeypatch):
    a = {**OPS["Conv2D"].attrs, "format": "NHWC", "out_channel": 6, "kernel_size": (1, 1),
         "pad_mode": "valid"}
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 5, 7, 4)).astype(np.float32)
    w = rng.standard_normal((6, 1, 1, 4)).astype(np.float32)
    dy = rng.standard_normal((2, 5, 7, 6)).astype(np.float32)
    fa = {**OPS["Conv2DBackpropFilter"].attrs, **a, "filter_sizes": (6, 4, 1, 1)}
    got = []
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(conv, "_pointwise", lambda geo: False)
        y, dw = np.empty((2, 5, 7, 6), np.float32), np.empty((6, 1, 1, 4), np.float32)
        OPS["Conv2D"].kernel([x, w], [y], a, None)
        OPS["Conv2DBackpropFilter"].kernel([dy, x], [dw], fa, None)
        got.append((y, dw))
    for fast, slow in zip(*got):
        np.testing.assert_array_equal(fast, slow)
