"""The W3 rewrite (todkit/runtime/rewrite_transposed_input.py): a Dense layer reading a
layout-transposed graph input runs on the input itself, with no Transpose call.

Every rewritten session is compared with the same graph run without rewrites (the per-node
kernels) and with the reference interpreter: same losses, gradients, weights and
predictions to float32 rounding (only the products' summation order differs). Graphs where
the transposed value has another reader, or the input is computed, must not be rewritten
and must still give the per-node results."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import GRAD, NET, _adam, f32, sparse_ce
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret
from todkit.runtime import rewrite, rewrite_parallel
from todkit.runtime import rewrite_transposed_input as rti
from todkit.runtime.session import Session

TOL = {"rtol": 2e-5, "atol": 1e-6}


def transposed_dense_graph(shape=(4, 5, 6, 3), perm=(0, 3, 1, 2), out=3, weight_kn=False,
                           weight_left=False, flatten=False, relu_between=False,
                           computed_input=False, seed=0) -> Graph:
    """inputs0 (shape) -> Transpose(perm) -> Reshape/Flatten -> Dense(out) -> sparse CE,
    Adam; as the converter writes W3 (weight [out, K] read with transpose_b, its gradient
    dY^T @ x), or with a [K, out] weight (``weight_kn``), or as logits^T = W @ x^T
    (``weight_left``): the other MatMul forms."""
    rng = np.random.default_rng(seed)
    g = Graph("transposed_dense")
    x = g.add_input("inputs0", TensorType(shape, dtypes.float32))
    label = g.add_input("inputs1", TensorType((shape[0],), dtypes.int32))
    src = emit(g, "ReLU", [x], name=f"{NET}/ReLU-op9").outputs[0] if computed_input else x
    t = emit(g, "Transpose", [src], {"perm": perm}, name="inputs0_post").outputs[0]
    k = int(np.prod(shape[1:]))
    if flatten:
        r = emit(g, "Flatten", [t], name=f"{NET}/Flatten-op0").outputs[0]
    else:
        r = emit(g, "Reshape", [t], {"shape": (-1, k)}, name=f"{NET}/Reshape-op0").outputs[0]
    fed = emit(g, "ReLU", [r], name=f"{NET}/ReLU-op0").outputs[0] if relu_between else r
    w_shape = (k, out) if weight_kn else (out, k)
    w = g.add_const("fc.weight", f32(rng.normal(0, 0.05, w_shape)), param=True)
    b = g.add_const("fc.bias", f32(rng.normal(0, 0.1, (out,))), param=True)
    if weight_left:  # logits^T = op(W) @ x^T
        mm_t = emit(g, "MatMul", [w, fed], {"transpose_a": weight_kn, "transpose_b": True},
                    name=f"{NET}/MatMul-op0").outputs[0]
        mm = emit(g, "Transpose", [mm_t], {"perm": (1, 0)}, name=f"{NET}/Transpose-op0"
                  ).outputs[0]
    else:
        mm = emit(g, "MatMul", [fed, w], {"transpose_b": not weight_kn},
                  name=f"{NET}/MatMul-op0").outputs[0]
    logits = emit(g, "BiasAdd", [mm, b], name=f"{NET}/BiasAdd-op0").outputs[0]
    loss, dlogits = sparse_ce(g, logits, label)
    grad_name = f"{GRAD}/_backbone-Tiny/fc-Dense/Grad_MatMul/MatMul-op0"
    if weight_left:  # dW = dY^T @ r ([out, K]) or r^T @ dY ([K, out]), dY^T made by a node
        dmm_t = emit(g, "Transpose", [dlogits], {"perm": (1, 0)},
                     name=f"{GRAD}/_backbone-Tiny/fc-Dense/Grad_Transpose-op0").outputs[0]
        if weight_kn:
            dw = emit(g, "MatMul", [r, dmm_t], {"transpose_a": True, "transpose_b": True},
                      name=grad_name).outputs[0]
        else:
            dw = emit(g, "MatMul", [dmm_t, r], name=grad_name).outputs[0]
    elif weight_kn:  # dW [K, out] = r^T @ dY
        dw = emit(g, "MatMul", [r, dlogits], {"transpose_a": True}, name=grad_name).outputs[0]
    else:  # dW [out, K] = dY^T @ r
        dw = emit(g, "MatMul", [dlogits, r], {"transpose_a": True}, name=grad_name).outputs[0]
    db = emit(g, "BiasAddGrad", [dlogits],
              name=f"{GRAD}/_backbone-Tiny/fc-Dense/Grad_BiasAdd/BiasAddGrad-op0").outputs[0]
    _adam(g, [(w, dw), (b, db)], 0.01)
    g.outputs = [loss]
    return g


def _batches(shape, out, n, seed=1):
    rng = np.random.default_rng(seed)
    return [(f32(rng.normal(size=shape)), rng.integers(0, out, shape[0]).astype(np.int32))
            for _ in range(n)]


def _session(graph, rewrites=True, monkeypatch=None, **kw) -> Session:
    if rewrites:
        return Session(graph, **kw)
    monkeypatch.setattr(rewrite, "REWRITERS", [])
    s = Session(graph, **kw)
    monkeypatch.undo()
    return s


def _transpose_skipped(s: Session, ex=None) -> bool:
    ex = ex or s.train
    return any(ex.nodes[i].op == "Transpose" and e is None for i, e in ex._fused.items())


def _feed(s: Session, x, y):
    for v, a in zip(s.inputs, (x, y)):
        s.train.array(v)[...] = a


def _train(s: Session, batches, **kw):
    losses = []
    for x, y in batches:
        _feed(s, x, y)
        s.run_step(**kw)
        losses.append(float(s.train.array(s.roles.train_outputs[0])))
    return losses


def _weights(graph):
    return {v.name: v.data.copy() for v in graph.values() if v.is_const and v.param}


def _assert_close(a: dict, b: dict):
    assert a.keys() == b.keys()
    for name in a:
        np.testing.assert_allclose(a[name], b[name], err_msg=name, **TOL)


CASES = {
    "w3": {},
    "flatten": {"flatten": True},
    "weight_kn": {"weight_kn": True},
    "weight_left": {"weight_left": True},
    "weight_left_kn": {"weight_left": True, "weight_kn": True},
    "more_rows_than_batch": {"shape": (2, 3, 4, 3), "out": 7},  # scratch outside the arena
    "nhwc_to_nwhc": {"perm": (0, 2, 1, 3)},
    "rank3": {"shape": (4, 6, 5), "perm": (0, 2, 1)},
    "rank5": {"shape": (3, 2, 4, 3, 2), "perm": (0, 4, 1, 3, 2), "weight_kn": True},
}


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("case", list(CASES))
def test_rewritten_step_equals_per_node_and_reference(case, threads, monkeypatch):
    """At two threads the products run in pieces on the pool (``rti.split_call``: copies
    by rows, the forward by its contracted axis, the gradient by its columns)."""
    kw = CASES[case]
    shape, out = kw.get("shape", (4, 5, 6, 3)), kw.get("out", 3)
    monkeypatch.setattr(rewrite_parallel, "MIN_PRODUCTS", 1)
    fast = _session(transposed_dense_graph(**kw), blas_threads=threads)
    monkeypatch.undo()
    plain = _session(transposed_dense_graph(**kw), rewrites=False, monkeypatch=monkeypatch)
    ref = transposed_dense_graph(**kw)
    assert _transpose_skipped(fast) and _transpose_skipped(fast, fast.eval)
    split = [i for i, e in fast.train._fused.items() if e and e[0].__name__ == "split"]
    assert len(split) == (2 if threads == 2 else 0)
    assert not _transpose_skipped(plain)
    batches = _batches(shape, out, 4)
    got, want = _train(fast, batches), _train(plain, batches)
    ref_losses = [float(interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y})[0])
                  for x, y in batches]
    np.testing.assert_allclose(got, want, **TOL)
    np.testing.assert_allclose(got, ref_losses, **TOL)
    _assert_close(_weights(fast.graph), _weights(plain.graph))
    _assert_close(_weights(fast.graph), _weights(ref))
    # The weight gradient is whole in its own buffer (the guard and the optimizer read it).
    dw = next(n.inputs[-1] for n in fast.roles.optimizers if n.inputs[0].name == "fc.weight")
    np.testing.assert_allclose(fast.train.array(dw), plain.train.array(
        next(n.inputs[-1] for n in plain.roles.optimizers if n.inputs[0].name == "fc.weight")),
        **TOL)
    # Predictions (the eval executor is rewritten too).
    for s in (fast, plain):
        s.set_train_mode(False)
        s.run_step()
    np.testing.assert_allclose(fast.eval.array(fast.roles.eval_outputs[0]),
                               plain.eval.array(plain.roles.eval_outputs[0]), **TOL)


@pytest.mark.parametrize("kw", [{"relu_between": True}, {"computed_input": True},
                                {"perm": (0, 1, 2, 3)}])
def test_not_rewritten_when_it_must_not_be(kw, monkeypatch):
    """The flattened value read by another node (it would read a Transpose output nobody
    wrote), a computed input (its bytes may be reused before the gradient product), an
    identity perm: the Transpose still runs, and the results are the per-node ones."""
    fast = _session(transposed_dense_graph(**kw))
    plain = _session(transposed_dense_graph(**kw), rewrites=False, monkeypatch=monkeypatch)
    assert not _transpose_skipped(fast) and not _transpose_skipped(fast, fast.eval)
    batches = _batches((4, 5, 6, 3), 3, 3)
    assert _train(fast, batches) == _train(plain, batches)
    a, b = _weights(fast.graph), _weights(plain.graph)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_not_rewritten_when_the_transposed_value_is_read_after_the_step():
    g = transposed_dense_graph()
    t = next(n.outputs[0] for n in g.nodes if n.op == "Transpose")
    s = Session(g)
    s.roles.eval_outputs.append(t)  # as if predictions included it: read after the step
    s._refresh_calls()
    assert not _transpose_skipped(s) and not _transpose_skipped(s, s.eval)


def test_traced_loop_runs_the_per_node_kernels_and_agrees():
    """The traced loop (kernel callbacks) still runs the Transpose and the plain products."""
    traced, fast = Session(transposed_dense_graph()), Session(transposed_dense_graph())
    seen = []
    batches = _batches((4, 5, 6, 3), 3, 3)
    got = _train(traced, batches, before=lambda node, ins, outs: seen.append(node.op))
    np.testing.assert_allclose(got, _train(fast, batches), **TOL)
    assert "Transpose" in seen
    _assert_close(_weights(traced.graph), _weights(fast.graph))


def test_scratch_reuses_the_transposed_values_bytes():
    """No memory added: the permuted weight and gradient scratch sit in the (unwritten)
    Transpose output's arena bytes when they fit."""
    s = Session(transposed_dense_graph())
    t = next(n.outputs[0] for n in s.train.nodes if n.op == "Transpose")
    calls = [e for e in s.train._fused.values() if e is not None and "copies" in e[3]]
    assert len(calls) == 2  # the forward and the weight-gradient products
    for entry in calls:
        assert np.shares_memory(entry[3]["scratch"], s.train.array(t))


LAYOUTS = [((5, 6, 3), (0, 3, 1, 2)), ((6, 5), (0, 2, 1)), ((5, 6, 3), (0, 2, 3, 1)),
           ((5, 6, 3), (0, 2, 1, 3)), ((2, 4, 3, 2), (0, 4, 1, 3, 2))]


@pytest.mark.parametrize("rest,perm", LAYOUTS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_blas_transposes_copy_as_numpy_does(rest, perm, dtype, monkeypatch):
    """OpenBLAS's omatcopy (alpha 1) moves every value bit for bit as NumPy's copies do
    (signed zeros, infinities, quiet NaN, subnormals), for weights [O, K] and [K, O]; the
    gathered weight times the flattened input is the weight times the flattened transpose,
    and the scatter brings the gathered weight back."""
    x_shape = (4, *rest)
    lay = rti._layout(_transpose_node(x_shape, perm))
    k = int(np.prod(rest))
    rng = np.random.default_rng(0)
    x = rng.normal(size=x_shape).astype(dtype)
    t_flat = x.transpose(perm).reshape(4, k)
    for ax, shape in ((1, (3, k)), (0, (k, 3))):
        src = rng.normal(size=shape).astype(dtype)
        got = {}
        for name, table in (("blas", rti._OMATCOPY), ("numpy", {})):
            monkeypatch.setattr(rti, "_OMATCOPY", table)
            special = src.copy()
            special.reshape(-1)[:5] = [-0.0, np.inf, -np.inf, np.nan, np.finfo(dtype).tiny / 4]
            for w in (src, special):
                gathered, back = np.full_like(w, 7), np.full_like(w, 7)
                rti._copy(rti._copy_plan(lay, gathered, w, ax, to_x=True))
                rti._copy(rti._copy_plan(lay, back, gathered, ax, to_x=False))
                assert back.tobytes() == w.tobytes()
                got[name, w is src] = gathered
        assert got["blas", True].tobytes() == got["numpy", True].tobytes()
        assert got["blas", False].tobytes() == got["numpy", False].tobytes()
        w, wg = (src, got["numpy", True]) if ax == 1 else (src.T, got["numpy", True].T)
        np.testing.assert_allclose(x.reshape(4, k) @ wg.T, t_flat @ w.T, rtol=1e-5, atol=1e-5)


def test_session_results_do_not_depend_on_the_copy_path(monkeypatch):
    batches = _batches((4, 5, 6, 3), 3, 3)
    fast = Session(transposed_dense_graph())
    monkeypatch.setattr(rti, "_OMATCOPY", {})
    plain = Session(transposed_dense_graph())
    assert _train(fast, batches) == _train(plain, batches)
    a, b = _weights(fast.graph), _weights(plain.graph)
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def _transpose_node(x_shape, perm):
    g = Graph("t")
    x = g.add_input("x", TensorType(x_shape, dtypes.float32))
    return emit(g, "Transpose", [x], {"perm": perm})


def test_non_finite_input_is_still_caught_before_the_update():
    s = Session(transposed_dense_graph())
    before = _weights(s.graph)
    x, y = _batches((4, 5, 6, 3), 3, 1)[0]
    x[1, 2, 3, 0] = np.nan
    _feed(s, x, y)
    with pytest.warns(RuntimeWarning):
        assert s.run_step() is False
    for name, arr in _weights(s.graph).items():
        if "power" not in name:
            np.testing.assert_array_equal(arr, before[name], err_msg=name)


@pytest.mark.parametrize("batch", [2, 7])
def test_resized_batch_is_rewritten_again_and_agrees(batch, monkeypatch):
    """A resize re-plans the arena: the rewrite is made again on the new views (W3 with
    more rows than the new batch: the scratch no longer fits the transposed value)."""
    fast = _session(transposed_dense_graph(out=3))
    plain = _session(transposed_dense_graph(out=3), rewrites=False, monkeypatch=monkeypatch)
    shapes = {"inputs0": (batch, 5, 6, 3), "inputs1": (batch,)}
    fast.resize(shapes)
    monkeypatch.setattr(rewrite, "REWRITERS", [])  # the plain one re-binds without them
    plain.resize(shapes)
    monkeypatch.undo()
    assert _transpose_skipped(fast) and not _transpose_skipped(plain)
    batches = _batches((batch, 5, 6, 3), 3, 3)
    np.testing.assert_allclose(_train(fast, batches), _train(plain, batches), **TOL)
    _assert_close(_weights(fast.graph), _weights(plain.graph))


def test_accumulated_gradients_and_virtual_batches_agree(monkeypatch):
    """Accumulate mode swaps the optimizers' kernels: the products stay rewritten and the
    summed gradients (read by apply_gradients) are the per-node ones."""
    fast = _session(transposed_dense_graph(), accumulate_gradients=True)
    plain = _session(transposed_dense_graph(), rewrites=False, monkeypatch=monkeypatch,
                     accumulate_gradients=True)
    assert _transpose_skipped(fast)
    batches = _batches((4, 5, 6, 3), 3, 3)
    _train(fast, batches)
    _train(plain, batches)
    for (v, a), (_, b) in zip(fast.gradients(), plain.gradients()):
        np.testing.assert_allclose(a, b, err_msg=v.name, **TOL)
    fast.apply_gradients()
    plain.apply_gradients()
    _assert_close(_weights(fast.graph), _weights(plain.graph))


def test_no_pieces_along_an_axis_shorter_than_the_parts():
    """A forward contracting one value, or a gradient of one row and column, has nothing to
    split: the call stays whole (it had indexed a second partial product)."""
    out = np.empty((3, 4), np.float32)
    forward = (rti._forward, [np.ones((3, 1), np.float32), np.ones((1, 4), np.float32)],
               [out], {"copies": [], "out_t": None})
    assert rti.split_call(forward, 2, None) is None
    gradient = (rti._gradient, [np.ones((1, 5), np.float32), np.ones((5, 1), np.float32)],
                [np.empty((1, 1), np.float32)],
                {"copies": [], "scratch": np.empty((1, 1), np.float32)})
    assert rti.split_call(gradient, 2, None) is None
    wide = (rti._forward, [np.ones((3, 6), np.float32), np.ones((6, 4), np.float32)],
            [out], {"copies": [], "out_t": None})
    call = rti.split_call(wide, 2, lambda tasks: [t() for t in tasks])
    call[0](None, None, None, None)
    np.testing.assert_allclose(out, 6.0)
