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
