"""Two threads (issue 6, the 2-thread cells): runtime/rewrite_parallel.py splits large calls
into pieces run at once on the worker pool (runtime/workers.py). A session with two
threads must compute what a one-thread session and the traced per-node path compute: bit
for bit where no matrix product is cut (element-wise ops, pooling, depthwise convolutions,
BatchNorm's block loops, optimizers), to float rounding where BLAS products are cut by rows
(OpenBLAS rounds a row by its position in the product: a row split moves rows)."""

from __future__ import annotations

import itertools
import threading

import numpy as np
import pytest

from tests.lite_models import device_model, export_converted, train_losses
from tests.test_runtime_graphs import CNN as NET
from tests.test_runtime_graphs import batch_norm, f32, mean_dense_head
from todkit import nn
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit, norm
from todkit.opset.registry import OPS
from todkit.runtime import Session, blas, rewrite_parallel, workers

N, H, W, C, CLASSES = 6, 9, 8, 8, 3


@pytest.fixture(autouse=True)
def small(monkeypatch):
    """Every call is worth splitting; BatchNorm runs in several (ragged) blocks; BLAS at one
    thread (its own threads round products differently; what is tested is the split)."""
    monkeypatch.setattr(rewrite_parallel, "MIN_VALUES", 1)
    monkeypatch.setattr(rewrite_parallel, "MIN_STREAM_VALUES", 1)
    monkeypatch.setattr(rewrite_parallel, "MIN_PRODUCTS", 1)
    monkeypatch.setattr(rewrite_parallel, "COLUMNS_SPLIT_PRODUCTS", 1)
    monkeypatch.setattr(norm, "_BLOCK_BYTES", 5 * C * 4 * 4)
    monkeypatch.setattr(norm, "_ROW", 2 * C)
    real = blas.set_threads
    monkeypatch.setattr(blas, "set_threads", lambda n: real(1))
    norm._blocks.cache_clear()
    yield
    norm._blocks.cache_clear()


def _conv_attrs(c_out, k, group=1, stride=1):
    return {**OPS["Conv2D"].attrs, "out_channel": c_out, "kernel_size": (k, k),
            "format": "NHWC", "group": group, "stride": (stride, stride),
            "pad_mode": "pad" if k > 1 else "valid",
            "pad_list": (k // 2,) * 4 if k > 1 else (0, 0, 0, 0)}


def frozen_net(seed: int = 0, with_products: bool = False) -> Graph:
    """A frozen backbone as W4/W5's, BatchNorm in train mode: depthwise 3x3 -> BatchNorm ->
    ReLU6 (fused), MaxPool 3x3/2, a branch ReLU(x) + bias, Concat on channels, Add, AvgPool;
    ``with_products``: a 3x3 convolution and a 1x1 expansion -> BatchNorm -> ReLU6 too."""
    rng = np.random.default_rng(seed)
    g = Graph("frozen_net")
    x = g.add_input("inputs0", TensorType((N, H, W, C), dtypes.float32))
    if with_products:
        w0 = g.add_const("conv0.weight", f32(rng.normal(0, 0.3, (C, 3, 3, C))))
        x = emit(g, "Conv2D", [x, w0], _conv_attrs(C, 3), name=f"{NET}/conv0").outputs[0]
        w1 = g.add_const("conv1.weight", f32(rng.normal(0, 0.3, (4 * C, 1, 1, C))))
        e = emit(g, "Conv2D", [x, w1], _conv_attrs(4 * C, 1), name=f"{NET}/conv1").outputs[0]
        e = emit(g, "ReLU6", [batch_norm(g, e, "bn1", 4 * C, rng)], name=f"{NET}/act1").outputs[0]
        w2 = g.add_const("conv2.weight", f32(rng.normal(0, 0.3, (C, 1, 1, 4 * C))))
        x = emit(g, "Conv2D", [e, w2], _conv_attrs(C, 1), name=f"{NET}/conv2").outputs[0]
    wd = g.add_const("dw.weight", f32(rng.normal(0, 0.5, (C, 3, 3, 1))))
    d = emit(g, "Conv2D", [x, wd], _conv_attrs(C, 3, group=C), name=f"{NET}/dw").outputs[0]
    r = emit(g, "ReLU6", [batch_norm(g, d, "bn2", C, rng)], name=f"{NET}/act2").outputs[0]
    p = emit(g, "MaxPool", [r], {"kernel_size": (3, 3), "strides": (2, 2), "pad_mode": "same",
                                 "format": "NHWC"}, name=f"{NET}/pool").outputs[0]
    b = g.add_const("bias", f32(rng.normal(0, 1, C)))
    q = emit(g, "ReLU", [emit(g, "BiasAdd", [p, b], {"data_format": "NHWC"},
                              name=f"{NET}/bias").outputs[0]], name=f"{NET}/relu").outputs[0]
    cat = emit(g, "Concat", [p, q], {"axis": 3}, name=f"{NET}/cat").outputs[0]
    s = emit(g, "Add", [cat, cat], name=f"{NET}/add").outputs[0]
    a = emit(g, "AvgPool", [s], {"kernel_size": (2, 2), "strides": (1, 1), "pad_mode": "same",
                                 "format": "NHWC"}, name=f"{NET}/avg").outputs[0]
    mean_dense_head(g, a, 2 * C, N, CLASSES, rng, "momentum")
    return g


def _feed(s, step: int):
    rng = np.random.default_rng(100 + step)
    x = f32(rng.normal(0.5, 2, (N, H, W, C)))
    for v, a in zip(s.inputs, (x, rng.integers(0, CLASSES, N).astype(np.int32))):
        s.current.array(v)[...] = a


def _state(s) -> dict[str, np.ndarray]:
    return {v.name: v.data.copy() for v in s.graph.values() if v.is_const}


def _split_calls(ex) -> list[str]:
    """Ops of the calls the parallel rewriter made (split pieces or PARALLEL blocks)."""
    found = []
    for step, e in ex._fused.items():
        if e is not None and (getattr(e[0], "__name__", "") in ("parallel_call", "phased_call")
                              or norm.PARALLEL in e[3]):
            found.append(ex.nodes[step].op)
    return found


def _run(g, threads, steps=3, traced=False):
    s = Session(g, blas_threads=threads)
    losses = []
    for k in range(steps):
        _feed(s, k)
        s.run_step(before=(lambda *a: None) if traced else None)
        losses.append(s.array(s.outputs()[0]).copy())
    s.set_train_mode(False)
    _feed(s, 99)
    s.run_step()
    return s, losses, _state(s), s.array(s.outputs(False)[0]).copy()


def test_two_threads_equal_one_thread_bit_for_bit():
    one = _run(frozen_net(), 1)
    two = _run(frozen_net(), 2)
    traced = _run(frozen_net(), 2, traced=True)
    ops = _split_calls(two[0].train)
    for op in ("Conv2D", "BatchNorm", "MaxPool", "BiasAdd", "ReLU", "Concat", "Add", "AvgPool"):
        assert op in ops, (op, ops)
    assert "ReduceMean" not in ops and "MatMul" not in ops  # reductions over the batch
    assert _split_calls(one[0].train) == []
    for got in (two, traced):
        for a, b in zip(one[1], got[1]):
            np.testing.assert_array_equal(a, b)
        for k, v in one[2].items():
            np.testing.assert_array_equal(got[2][k], v, err_msg=k)
        np.testing.assert_array_equal(got[3], one[3])  # eval mode: its own split calls
    assert _split_calls(two[0].eval)


def test_three_threads_and_odd_pieces_equal_one_thread():
    one = _run(frozen_net(1), 1, steps=2)
    three = _run(frozen_net(1), 3, steps=2)
    assert "Conv2D" in _split_calls(three[0].train)
    for k, v in one[2].items():
        np.testing.assert_array_equal(three[2][k], v, err_msg=k)
    np.testing.assert_array_equal(three[3], one[3])


def test_products_cut_by_rows_equal_one_thread_to_rounding():
    one = _run(frozen_net(2, with_products=True), 1)
    two = _run(frozen_net(2, with_products=True), 2)
    ops = _split_calls(two[0].train)
    assert ops.count("Conv2D") >= 3, ops  # the 3x3, the fused 1x1 -> BatchNorm, the projection
    for a, b in zip(one[1], two[1]):
        np.testing.assert_allclose(b, a, rtol=1e-5)
    for k, v in one[2].items():
        np.testing.assert_allclose(two[2][k], v, rtol=1e-4, atol=1e-5, err_msg=k)


def test_a_large_unsplit_product_turns_splitting_off(monkeypatch):
    monkeypatch.setattr(rewrite_parallel, "BLAS_LEFT_PRODUCTS", 1)  # the head's MatMul
    s = Session(frozen_net(), blas_threads=2)
    assert _split_calls(s.train) == [] and _split_calls(s.eval) == []


def test_one_thread_builds_no_pool():
    before = dict(workers._POOLS)
    s = Session(frozen_net(), blas_threads=1)
    assert _split_calls(s.train) == [] and workers._POOLS == before


class _TrainedCNN(nn.Cell):
    """Everything trained: the backward pass has BatchNormGrad, MaxPoolGrad, ReluGrad, the
    convolutions' input and filter gradients and ApplyMomentum."""

    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, pad_mode="same")
        self.bn = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, pad_mode="same")
        self.relu = nn.ReLU()
        self.pool = nn.MaxPool2d(2, 2)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(8 * 4 * 4, 5)

    def construct(self, x):
        x = self.pool(self.relu(self.bn(self.conv1(x))))
        return self.fc(self.flatten(self.relu(self.conv2(x))))


def test_a_trained_cnn_through_lite_equals_one_thread(tmp_path, monkeypatch):
    import todkit as M
    from todkit.runtime import fuse

    monkeypatch.setattr(fuse, "MAX_FUSED_SIZE", 64)  # the larger weights' own updates

    M.set_seed(3)
    rng = np.random.default_rng(1)
    x = f32(rng.standard_normal((6, 3, 8, 8)))
    y = rng.integers(0, 5, 6).astype(np.int32)
    path = export_converted(tmp_path, _TrainedCNN(), x, y)
    runs = []
    for threads in (1, 2):
        model = device_model(path, x, y, threads)
        runs.append((model.session, train_losses(model, 3), _state(model.session)))
    ex = runs[1][0].train
    ops = _split_calls(ex)
    for op in ("BatchNormGrad", "MaxPoolGrad", "ReluGrad", "Conv2DBackpropInput",
               "ApplyMomentum", "BatchNorm", "MaxPool", "Conv2DBackpropFilter"):
        assert op in ops, (op, ops)
    assert "BiasAddGrad" not in ops  # a sum over the batch
    # Of the nodes sharing a workspace (the forward convolutions' columns), only the
    # convolutions' own pieces split (tests/test_perf_2t_columns.py).
    assert {ex.nodes[step].op for step, e in ex._fused.items()
            if e is not None and getattr(e[0], "__name__", "") == "phased_call"
            and rewrite_parallel._shares_workspace(ex, step)} == {"Conv2D",
                                                                  "Conv2DBackpropFilter"}
    np.testing.assert_allclose(runs[1][1], runs[0][1], rtol=1e-5)
    for k, v in runs[0][2].items():
        np.testing.assert_allclose(runs[1][2][k], v, rtol=1e-4, atol=1e-6, err_msg=k)


# -- the pieces: kernels and the pool -------------------------------------------------------
@pytest.mark.parametrize("shape,fmt", [((5, 7, 6, C), "NHWC"), ((5, C, 7, 6), "NCHW"),
                                       ((37, C), "NHWC"), ((2, 3 * C, 9, 9), "NCHW")])
@pytest.mark.parametrize("training", [True, False])
def test_batch_norm_blocks_in_parts_equal_serial(shape, fmt, training):
    rng = np.random.default_rng(7)
    c = shape[-1] if fmt == "NHWC" or len(shape) == 2 else shape[1]
    x = f32(rng.normal(1, 2, shape))
    vec = [f32(rng.uniform(0.5, 1.5, c)) for _ in range(4)]
    a = {"is_training": training, "momentum": 0.1, "epsilon": 1e-5, "data_format": fmt}
    par = workers.Parallel(2)
    ws = np.empty(norm._workspace(TensorType(shape, dtypes.float32), fmt, True)[0].shape,
                  np.float32)

    def bn(attrs):
        ins = [x, *[v.copy() for v in vec]]
        outs = [np.empty_like(x), *[np.empty(c, np.float32) for _ in range(4)], ws]
        norm.batch_norm(ins, outs, attrs, None, lambda y: np.clip(y, 0, 6, out=y))
        return outs[:5] + ins[3:]

    for a_, b_ in zip(bn(a), bn({**a, norm.PARALLEL: par})):
        np.testing.assert_array_equal(a_, b_)
    dy = f32(rng.normal(0, 1, shape))

    def grad(attrs):
        outs = [np.empty_like(x), np.empty(c, np.float32), np.empty(c, np.float32), ws]
        norm.batch_norm_grad([dy, x, vec[0], vec[1], vec[3], vec[3]], outs, attrs)
        return outs[:3]

    for a_, b_ in zip(grad(a), grad({**a, norm.PARALLEL: par})):
        np.testing.assert_array_equal(a_, b_)


def test_pointwise_batch_norm_in_parts_equals_serial(monkeypatch):
    monkeypatch.setattr(norm, "_PRODUCT_BYTES", 7 * 4 * C * 4)
    monkeypatch.setattr(norm, "_GRAM_BYTES", 9 * C * 8)
    rng = np.random.default_rng(8)
    x, w = f32(rng.normal(1, 2, (3, 7, 5, C))), f32(rng.normal(0, 0.5, (4 * C, 1, 1, C)))
    vec = [f32(rng.uniform(0.5, 1.5, 4 * C)) for _ in range(4)]
    a = {"is_training": True, "momentum": 0.1, "epsilon": 1e-5, "data_format": "NHWC"}

    def run(attrs):
        ins = [x, w, *[v.copy() for v in vec]]
        outs = [np.empty((3, 7, 5, 4 * C), np.float32),
                *[np.empty(4 * C, np.float32) for _ in range(4)]]
        norm.pointwise_batch_norm(ins, outs, attrs, None, None)
        return outs + ins[4:]

    for a_, b_ in zip(run(a), run({**a, norm.PARALLEL: workers.Parallel(2)})):
        np.testing.assert_array_equal(a_, b_)


def test_pool_runs_pieces_on_two_threads_and_reraises():
    pool = workers.pool(2)
    seen = []
    pool.run([lambda: seen.append(threading.get_ident()),
              lambda: seen.append(threading.get_ident())])
    assert len(set(seen)) == 2

    def fail():
        raise ValueError("piece failed")
    with pytest.raises(ValueError, match="piece failed"):
        pool.run([lambda: None, fail])
    done = []
    pool.run([lambda: done.append(0), lambda: done.append(1)])  # still usable
    assert sorted(done) == [0, 1]


def test_more_pieces_than_threads_all_run():
    done = []
    workers.pool(2).run([lambda k=k: done.append(k) for k in range(5)])
    assert sorted(done) == list(range(5))


def test_a_busy_pool_runs_the_pieces_in_the_caller():
    pool = workers.Pool(2)
    seen = []
    with pool._busy:  # another thread's call in progress
        pool.run([lambda: seen.append(threading.get_ident()),
                  lambda: seen.append(threading.get_ident())])
    assert seen == [threading.get_ident()] * 2


@pytest.mark.parametrize("count,parts", [(1, 2), (2, 2), (7, 2), (7, 3), (100, 2)])
def test_ranges_cover_in_order(count, parts):
    spans = workers.ranges(count, parts)
    assert spans[0][0] == 0 and spans[-1][1] == count
    assert all(lo < hi for lo, hi in spans) and len(spans) == min(count, parts)
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    weighted = workers.ranges(count, parts, [1.0] * (count - 1) + [count])
    assert weighted[-1][1] == count and all(lo < hi for lo, hi in weighted)
