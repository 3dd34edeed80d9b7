"""The arena planner: no two values live at the same time share bytes, and the plan is never
bigger than one buffer per value; checked on random lifetimes and on random graphs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret
from todkit.runtime import Buffer, Session, plan_arena
from todkit.runtime.planner import align_up


def brute_force_overlaps(plan) -> list:
    bad = []
    bs, offs = plan.buffers, plan.offsets
    for i in range(len(bs)):
        for j in range(i + 1, len(bs)):
            a, b = bs[i], bs[j]
            if not (a.size and b.size and a.lifetime_overlaps(b)):
                continue
            if offs[i] < offs[j] + b.size and offs[j] < offs[i] + a.size:
                bad.append((a.name, b.name))
    return bad


buffers = st.lists(
    st.tuples(st.integers(0, 5000), st.integers(0, 30), st.integers(0, 10)).map(
        lambda t: (t[0], t[1], t[1] + t[2])),
    max_size=40)


@settings(max_examples=300, deadline=None)
@given(buffers, st.sampled_from([1, 16, 64]), st.integers(0, 256))
def test_plan_never_overlaps_live_buffers(specs, alignment, base):
    bufs = [Buffer(f"b{i}", size, a, b) for i, (size, a, b) in enumerate(specs)]
    plan = plan_arena(bufs, alignment=alignment, base=base)
    assert brute_force_overlaps(plan) == []
    assert plan.overlaps() == []
    assert plan.total <= align_up(plan.naive_total, alignment)
    assert all(off >= base and off % alignment == 0 for off in plan.offsets)
    assert all(off + b.size <= plan.total for off, b in zip(plan.offsets, bufs))


def first_fit_offsets(bufs, alignment, base) -> list[int]:
    """tflite-micro's greedy first fit, written plainly: the oracle of the vectorised one."""
    base = align_up(base, alignment)
    order = sorted(range(len(bufs)), key=lambda i: (-bufs[i].size, bufs[i].first, i))
    offsets, placed = [base] * len(bufs), []
    for i in order:
        size = align_up(bufs[i].size, alignment)
        if size:
            candidate = base
            for start, stop in sorted((offsets[j], offsets[j] + align_up(bufs[j].size, alignment))
                                      for j in placed if bufs[i].lifetime_overlaps(bufs[j])):
                if candidate + size <= start:
                    break
                candidate = max(candidate, stop)
            offsets[i] = candidate
            placed.append(i)
    return offsets


@settings(max_examples=300, deadline=None)
@given(buffers, st.sampled_from([1, 16, 64]), st.integers(0, 256))
def test_plan_is_the_plain_first_fit(specs, alignment, base):
    bufs = [Buffer(f"b{i}", size, a, b) for i, (size, a, b) in enumerate(specs)]
    assert plan_arena(bufs, alignment=alignment, base=base).offsets == first_fit_offsets(
        bufs, alignment, base)


def test_disjoint_lifetimes_share_memory():
    bufs = [Buffer("a", 1000, 0, 1), Buffer("b", 1000, 2, 3), Buffer("c", 500, 1, 2)]
    plan = plan_arena(bufs, alignment=64)
    assert plan.offset_of("a") == plan.offset_of("b")
    assert plan.total < plan.naive_total
    assert "naive sum" in plan.describe()


def test_overlaps_detects_a_bad_plan():
    plan = plan_arena([Buffer("a", 100, 0, 2), Buffer("b", 100, 1, 3)], alignment=1)
    plan.offsets = [0, 50]
    assert plan.overlaps() == [("a", "b")]


@st.composite
def random_graphs(draw):
    """A random DAG of element-wise ops on one shape; several outputs."""
    shape = tuple(draw(st.lists(st.integers(1, 5), min_size=1, max_size=3)))
    g = Graph("random")
    vals = [g.add_input(f"in{i}", TensorType(shape, dtypes.float32))
            for i in range(draw(st.integers(1, 3)))]
    n = draw(st.integers(1, 25))
    for k in range(n):
        op = draw(st.sampled_from(["Add", "Sub", "Mul", "ReLU", "Tanh"]))
        pick = st.integers(0, len(vals) - 1)
        ins = [vals[draw(pick)]] if op in ("ReLU", "Tanh") else [vals[draw(pick)],
                                                                   vals[draw(pick)]]
        vals.append(emit(g, op, ins, name=f"n{k}/{op}").outputs[0])
    produced = vals[len(g.inputs):]
    outs = draw(st.lists(st.sampled_from(produced), min_size=1, max_size=3, unique_by=id))
    g.outputs = outs
    return g


@settings(max_examples=100, deadline=None)
@given(random_graphs(), st.integers(0, 2**31 - 1))
def test_random_graphs_run_like_the_interpreter(g, seed):
    s = Session(g)
    assert s.train is None  # no loss: an inference model, run by the eval plan
    plan = s.eval.plan
    assert brute_force_overlaps(plan) == []
    assert plan.total <= plan.naive_total
    rng = np.random.default_rng(seed)
    feeds = {v: rng.normal(size=v.type.shape).astype(np.float32) for v in g.inputs}
    for v, arr in feeds.items():
        s.eval.array(v)[...] = arr
    s.run_step()
    want = interpret(g, feeds)
    for v, w in zip(g.outputs, want):
        np.testing.assert_array_equal(s.eval.array(v), w)


# -- views (ops' ``alias``) and kernel workspaces ----------------------------------------------
def live_ranges(ex, keep_alive=()):
    """Per value the executor binds (planned, aliased, workspace): its array and the steps it
    must hold its bytes, computed from the graph alone (not from the planner)."""
    from todkit.opset.registry import get_op

    n = len(ex.nodes)
    rng = {}
    arrays = {}
    for step, node in enumerate(ex.nodes):
        for v in node.inputs:
            if id(v) in rng:
                rng[id(v)][1] = step
        for v in node.outputs:
            rng[id(v)] = [step, step]
            arrays[id(v)] = ex.views[id(v)]
        k_out = len(node.outputs)
        for ws in ex.bound[step][2][k_out:]:
            key = ("ws", id(ws))  # a shared workspace: one range from its first to last user
            rng[key] = [rng[key][0], step] if key in rng else [step, step]
            arrays[key] = ws
        assert len(ex.bound[step][2]) - k_out == len(
            get_op(node.op).workspace_types([v.type for v in node.inputs], node.attrs))
    for v in keep_alive:
        if id(v) in rng:
            rng[id(v)][1] = n - 1
    return rng, arrays


def check_no_live_overlap(ex, keep_alive=()):
    """Two values live at once share no byte unless one is a declared view of the other."""
    rng, arrays = live_ranges(ex, keep_alive)
    group = {k: id(ex.aliases[k]) if k in ex.aliases else k for k in rng}
    keys = list(rng)
    for i, a in enumerate(keys):
        for b in keys[i + 1:]:
            if group[a] == group[b]:
                continue
            (fa, la), (fb, lb) = rng[a], rng[b]
            if fa <= lb and fb <= la and arrays[a].size and arrays[b].size:
                assert not np.shares_memory(arrays[a], arrays[b]), (a, b)


@st.composite
def random_view_graphs(draw):
    """Random DAGs mixing element-wise ops with Reshape / ExpandDims / Flatten views."""
    shape = tuple(draw(st.lists(st.integers(1, 4), min_size=2, max_size=3)))
    size = int(np.prod(shape))
    g = Graph("views")
    vals = [g.add_input(f"in{i}", TensorType(shape, dtypes.float32))
            for i in range(draw(st.integers(1, 2)))]
    n = draw(st.integers(1, 20))
    for k in range(n):
        op = draw(st.sampled_from(["Add", "Mul", "ReLU", "Reshape", "ExpandDims", "Back"]))
        x = vals[draw(st.integers(0, len(vals) - 1))]
        if op == "Reshape":
            out = emit(g, "Reshape", [x], {"shape": (size,)}, name=f"n{k}/Reshape").outputs[0]
        elif op == "ExpandDims":
            out = emit(g, "ExpandDims", [x], {"axis": 0}, name=f"n{k}/ExpandDims").outputs[0]
        elif op == "Back":  # to the common shape, so element-wise ops can mix everything
            out = emit(g, "Reshape", [x], {"shape": shape}, name=f"n{k}/Back").outputs[0]
        elif op == "ReLU":
            out = emit(g, "ReLU", [x], name=f"n{k}/ReLU").outputs[0]
        else:
            y = vals[draw(st.integers(0, len(vals) - 1))]
            if x.type.shape != y.type.shape:
                y = emit(g, "Reshape", [y], {"shape": x.type.shape}, name=f"n{k}/Fit").outputs[0]
            out = emit(g, op, [x, y], name=f"n{k}/{op}").outputs[0]
        vals.append(out)
    produced = vals[len(g.inputs):]
    g.outputs = draw(st.lists(st.sampled_from(produced), min_size=1, max_size=3, unique_by=id))
    return g


@settings(max_examples=150, deadline=None)
@given(random_view_graphs(), st.integers(0, 2**31 - 1))
def test_views_never_overlap_live_values(g, seed):
    s = Session(g)
    check_no_live_overlap(s.eval, g.outputs)
    assert s.eval.plan.overlaps() == []
    rng = np.random.default_rng(seed)
    feeds = {v: rng.normal(size=v.type.shape).astype(np.float32) for v in g.inputs}
    for v, arr in feeds.items():
        s.eval.array(v)[...] = arr
    s.run_step()
    for v, w in zip(g.outputs, interpret(g, feeds)):
        np.testing.assert_array_equal(s.eval.array(v), w)


def test_reshape_of_an_input_is_a_view_and_costs_no_arena():
    g = Graph("flat")
    x = g.add_input("x", TensorType((4, 3, 8, 8), dtypes.float32))
    flat = emit(g, "Reshape", [x], {"shape": (4, 192)}, name="r").outputs[0]
    y = emit(g, "ReLU", [flat], name="relu").outputs[0]
    g.outputs = [y]
    s = Session(g)
    assert id(flat) in s.eval.aliases
    assert np.shares_memory(s.eval.array(flat), s.eval.array(x))
    assert s.eval.plan.total - s.eval.plan.base <= align_up(y.type.nbytes, 64)
    s.eval.array(x)[...] = np.arange(4 * 192, dtype=np.float32).reshape(4, 3, 8, 8) - 300
    s.run_step()
    np.testing.assert_array_equal(s.eval.array(y), np.maximum(
        np.arange(4 * 192, dtype=np.float32).reshape(4, 192) - 300, 0))


def test_workspaces_are_planned_and_never_overlap_live_values():
    g = Graph("convs")
    x = g.add_input("x", TensorType((2, 9, 9, 3), dtypes.float32))
    rng = np.random.default_rng(0)
    w1 = g.add_const("w1", rng.normal(size=(4, 3, 3, 3)).astype(np.float32))
    w2 = g.add_const("w2", rng.normal(size=(5, 2, 2, 4)).astype(np.float32))
    h = emit(g, "Conv2D", [x, w1], {"out_channel": 4, "kernel_size": (3, 3),
                                   "format": "NHWC"}, name="c1").outputs[0]
    y = emit(g, "Conv2D", [h, w2], {"out_channel": 5, "kernel_size": (2, 2),
                                   "format": "NHWC"}, name="c2").outputs[0]
    # The filter gradient of c2 reuses c2's im2col columns (same x, same geometry).
    dy = emit(g, "ReLU", [y], name="dy").outputs[0]
    dw = emit(g, "Conv2DBackpropFilter", [dy, h],
              {"out_channel": 5, "kernel_size": (2, 2), "format": "NHWC",
               "filter_sizes": (5, 4, 2, 2)}, name="dw").outputs[0]
    g.outputs = [y, h, dw]
    s = Session(g)
    assert any("workspace" in b.name for b in s.eval.plan.buffers)
    step = [n.name for n in s.eval.nodes].index("dw")
    assert s.eval.filled == {step: {1}}
    c2 = [n.name for n in s.eval.nodes].index("c2")
    assert s.eval.bound[c2][2][2] is s.eval.bound[step][2][2]
    check_no_live_overlap(s.eval, g.outputs)
    assert s.eval.plan.overlaps() == []
    feed = rng.normal(size=(2, 9, 9, 3)).astype(np.float32)
    s.eval.array(x)[...] = feed
    s.run_step()
    for v, want in zip(g.outputs, interpret(g, {x: feed})):
        np.testing.assert_array_equal(s.eval.array(v), want)
