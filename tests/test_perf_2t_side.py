"""Two threads, weight gradients beside the backward chain (issue 6, W6's 2-thread cell;
runtime/overlap.py): filter gradients run whole on the worker while the caller runs the
input-gradient chain, each planned as live through its window, and the guard checks each
gradient as soon as it is written (in the side node's task for those). A side node's call
is the one-thread kernel, so what it writes is one thread's; the rest of the step may be
split as before (float rounding)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from tests.lite_models import device_model, export_converted, train_losses
from tests.test_perf_2t_columns import _Stages
from tests.test_perf_2t_parallel import _state
from todkit.core.errors import OpExecuteError
from todkit.opset import conv
from todkit.runtime import fuse, overlap
from todkit.runtime import session as session_module
from todkit.runtime.executor import _no_kernel
from todkit.runtime.guard import NonFiniteWarning


@pytest.fixture
def sides(monkeypatch):
    """The test network's filter gradients are small: let every one be a side node."""
    monkeypatch.setattr(overlap, "MIN_SIDE_PRODUCTS", 1)


def _data():
    rng = np.random.default_rng(2)
    return (rng.standard_normal((6, 3, 8, 8)).astype(np.float32),
            rng.integers(0, 5, 6).astype(np.int32))


def _model(tmp_path, threads):
    import todkit as M

    M.set_seed(5)
    x, y = _data()
    path = tmp_path / "m.ms"
    if not path.exists():
        export_converted(tmp_path, _Stages(), x, y)
    return device_model(str(path), x, y, threads)


def _reads_writes(entry):
    _, ins, outs, _ = entry
    keep = [a for a in ins if isinstance(a, np.ndarray) and a.size]
    return keep, [a for a in outs if a.size]


def _clash(xs, ys) -> bool:
    return any(np.shares_memory(a, b) for a in xs for b in ys)


def test_filter_gradients_run_beside_the_chain_and_equal_one_thread(tmp_path, sides):
    one, two = _model(tmp_path, 1), _model(tmp_path, 2)
    ex = two.session.train
    active = ex.active_stages()
    assert active and set(active) == set(ex.stages)
    ops = [ex.nodes[s].op for s in active]  # filter gradients, and the Dense's weight one
    assert ops.count("Conv2DBackpropFilter") >= 5 and set(ops) <= {"Conv2DBackpropFilter",
                                                                      "MatMul"}, ops
    assert not one.session.train.stages
    # Nothing a side node touches shares a byte with what its window's calls touch.
    assert ex.plan.overlaps() == []
    for s, e in active.items():
        reads, writes = _reads_writes(ex.bound[s])
        for k in range(s + 1, e + 1):
            r, w = _reads_writes(ex.bound[k])
            assert not _clash(writes, r + w) and not _clash(reads, w), (ex.nodes[s].name, k)
    np.testing.assert_allclose(train_losses(two, 4), train_losses(one, 4), rtol=1e-5)
    for k, v in _state(one.session).items():
        np.testing.assert_allclose(_state(two.session)[k], v, rtol=1e-4, atol=1e-6,
                                   err_msg=k)


def test_the_arena_stays_the_unstaged_orders(tmp_path, sides, monkeypatch):
    staged = _model(tmp_path, 2).session
    monkeypatch.setattr(session_module, "side_schedule", lambda nodes, end, _: (nodes, []))
    plain = _model(tmp_path, 2).session
    assert staged.train.stages and not plain.train.stages
    assert staged.train.plan.total <= plain.train.plan.total * overlap.PEAK_TOLERANCE


@pytest.mark.parametrize("where", ["side", "window"])
def test_a_failing_call_is_named_and_the_step_can_run_again(tmp_path, sides, where):
    """The side node's error reaches the caller at the join; a window call's error waits
    for the side node first (it may still be writing)."""
    model = _model(tmp_path, 2)
    ex = model.session.train
    s, e = next((s, e) for s, e in ex.active_stages().items()
                if ex.nodes[s].op == "Conv2DBackpropFilter" and s not in ex._fused)
    if where == "window":
        s = next(k for k in range(s + 1, e + 1) if k not in ex._fused
                 and ex.bound[k][0] is not _no_kernel)
    kernel, ins, outs, attrs = ex.bound[s]

    def broken(*args):
        raise ValueError("boom")
    ex.bound[s] = (broken, ins, outs, attrs)
    ex.refresh()
    with pytest.raises(OpExecuteError, match=ex.nodes[s].name):
        model.run_step()
    ex.bound[s] = (kernel, ins, outs, attrs)
    ex.refresh()
    train_losses(model, 2)  # the worker was waited for and is free again
    assert ex._side._worker is None


def test_live_products_count_only_taps_on_real_input():
    attrs = {"format": "NHWC", "group": 1, "out_channel": 8, "kernel_size": (3, 3),
             "stride": (1, 1), "dilation": (1, 1), "pad_mode": "pad", "pad_list": (1,) * 4}
    for hw, taps in ((1, 1), (2, 16), (8, 22 * 22)):  # 8x8: 8*3 - 2 per axis
        x, w = (4, hw, hw, 5), (8, 3, 3, 5)
        assert conv.live_products("Conv2D", [x, w], attrs) == 4 * taps * 5 * 8
        bpi = {**attrs, "input_sizes": (4, 5, hw, hw)}
        assert conv.live_products("Conv2DBackpropInput", [(4, hw, hw, 8), w], bpi) == \
            4 * taps * 5 * 8
        bpf = {**attrs, "filter_sizes": (8, 5, 3, 3)}
        assert conv.live_products("Conv2DBackpropFilter", [(4, hw, hw, 8), x], bpf) == \
            4 * taps * 5 * 8


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("traced,virtual", [(False, False), (True, False), (False, True)])
def test_gradients_checked_early_still_stop_a_bad_step(tmp_path, sides, monkeypatch, threads,
                                                       traced, virtual):
    """A NaN written into a filter gradient (the loss stays finite) reaches the guard
    through its early check (in the side node's task at two threads) or, on the traced
    loop, which makes none, through the check at the end: the early answer of the step
    before ("finite") is not reused. (Gradients of fused small parameters share one
    buffer, checked at the end: none fused here.)"""
    monkeypatch.setattr(fuse, "MAX_FUSED_SIZE", 0)
    model = _model(tmp_path, threads)
    s = model.session
    ex = s.train
    early_steps = set(s._early_checks([v for v, _ in s.guard.watched], {}).values())
    step = next(k for k in sorted(early_steps) if ex.nodes[k].op == "Conv2DBackpropFilter"
                and k not in ex._fused)
    assert (step in ex.active_stages()) == (threads == 2)
    if virtual:  # gradients summed over 2 steps (accumulate mode), then applied
        model.setup_virtual_batch(2)
    train_losses(model, 1)  # the early checks said "finite" for this step
    before = _state(s)

    def poison(out):
        out.reshape(-1)[0] = np.nan
    if traced:
        def after(node, ins, outs):
            if node is ex.nodes[step]:
                poison(outs[0])
        callbacks = (None, after)
    else:
        kernel, ins, outs, attrs = ex.bound[step]

        def poisoned(i, o, a, rt):
            kernel(i, o, a, rt)
            poison(o[0])
        ex.bound[step] = (poisoned, ins, outs, attrs)
        ex.refresh()
        callbacks = (None, None)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert s.run_step(*callbacks) is False
    assert any(issubclass(w.category, NonFiniteWarning) for w in seen)
    for k, v in before.items():
        np.testing.assert_array_equal(_state(s)[k], v, err_msg=k)


def test_a_repeated_weight_gradient_is_not_a_side_node(monkeypatch):
    """The executor binds a node that repeats another's computation as a view of the first:
    neither may run beside the chain (the view's readers would read it mid-write)."""
    from todkit.core import dtypes
    from todkit.ir.graph import Graph, TensorType
    from todkit.opset import emit

    monkeypatch.setattr(overlap, "MIN_SIDE_PRODUCTS", 1)
    g = Graph("g")
    dy = g.add_input("dy", TensorType((8, 5), dtypes.float32))
    h = g.add_input("h", TensorType((8, 7), dtypes.float32))
    one = emit(g, "MatMul", [dy, h], {"transpose_a": True}, name="dw")
    assert overlap._side_nodes([one], set()) == {id(one)}
    two = emit(g, "MatMul", [dy, h], {"transpose_a": True}, name="dw_again")
    assert overlap._side_nodes([one, two], set()) == set()


def test_no_early_checks_when_nothing_is_checked(tmp_path, sides, monkeypatch):
    """``nonfinite="ignore"``: the step makes no early checks (ResNet18's cost ~1.3 ms)."""
    from todkit.runtime.executor import _run_all
    from todkit.runtime.session import Session

    monkeypatch.setattr(fuse, "MAX_FUSED_SIZE", 0)  # planned gradients, checked early
    model = _model(tmp_path, 2)
    assert any(c[0] is _run_all for c in model.session.train.calls)
    quiet = Session(model.session.graph, nonfinite="ignore", blas_threads=2)
    assert not any(c[0] is _run_all for c in quiet.train.calls)
    assert quiet.train.stages  # the side nodes still run beside the chain
