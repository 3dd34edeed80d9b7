"""Fused optimizer groups (todkit/runtime/fuse.py): small parameters of one optimizer type are
updated by one call on flat buffers; results equal the per-node calls bit for bit, in every
mode the session offers (plain steps, accumulated gradients, a pinned lr)."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import batches, train_graph
from todkit.runtime.guard import NonFiniteError
from todkit.runtime.session import Session


def _weights(s):
    return {v.name: v.data.copy() for v in s.graph.values() if v.is_const}


def _member_calls(s):
    """Per member of the first group: "own" (its bound kernel runs), "fused" (the group's
    call) or None (no call). Other build-time rewrites (runtime/rewrite.py) may change the
    rest of the call list, so the group is checked through its members' steps."""
    members = {id(n) for n in s.groups[0].members}
    steps = [i for i, n in enumerate(s.train.nodes) if id(n) in members]
    fused = s.train._fused
    return ["own" if i not in fused else fused[i] and "fused" for i in steps]


def _run(s, steps):
    for x, y in batches(steps):
        for v, a in zip(s.inputs, (x, y)):
            s.train.array(v)[...] = a
        s.run_step()


@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_group_is_one_call_with_the_per_node_results(opt):
    fused, plain = Session(train_graph(opt)), Session(train_graph(opt))
    assert [len(g.members) for g in fused.groups] == [2]
    assert _member_calls(fused) == ["fused", None]
    first = next(i for i, n in enumerate(fused.train.nodes) if n is fused.groups[0].members[0])
    # the groups run optim.planned_adam / planned_momentum / planned_sgd (the kernel's
    # calls on views bound once, scalars read per call)
    assert fused.train._fused[first][0].__name__ == {
        "adam": "fused_adam", "momentum": "fused_applymomentum", "sgd": "fused_sgd"}[opt]
    grp = fused.groups[0]
    for k, flat in grp.flat.items():  # weights and slots are views of one buffer
        assert all(np.shares_memory(n.inputs[k].data, flat) for n in grp.members)
    assert all(np.shares_memory(fused.train.array(v), fused.arena) for v in grp.grad_values())
    plain.train.set_fused({})  # the per-node kernels, as bound
    _run(fused, 4)
    _run(plain, 4)
    a, b = _weights(fused), _weights(plain)
    for name in b:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)


def test_accumulate_mode_unfuses_and_refuses():
    s = Session(train_graph("adam"))
    fused_calls = len(s.train.calls)
    s._set_accumulating(True)
    assert _member_calls(s) == ["own", "own"]
    s._set_accumulating(False)
    assert len(s.train.calls) == fused_calls
    s.set_learning_rate(0.5)
    assert len(s.train.calls) == fused_calls
    assert s.get_learning_rate() == 0.5


def test_guard_names_the_bad_member_of_a_group():
    s = Session(train_graph("momentum"), nonfinite="raise")
    grp = s.groups[0]
    x, y = batches(1)[0]
    for v, a in zip(s.inputs, (x, y)):
        s.train.array(v)[...] = a
    bad = grp.grad_values()[1]
    kernel, ins, outs, attrs = s.train.calls[s.train._pos[s.update_start] - 1]

    def poison(ins, outs, attrs, rt, _k=kernel):
        _k(ins, outs, attrs, rt)
        s.train.array(bad).reshape(-1)[0] = np.nan
    s.train.calls[s.train._pos[s.update_start] - 1] = (poison, ins, outs, attrs)
    with pytest.raises(NonFiniteError, match=bad.name):
        s.run_step()


def test_guard_tells_an_overflowing_sum_from_a_non_finite_value():
    from todkit.runtime.guard import Guard

    big = np.full(4, 3e38, np.float32)  # finite, but its float32 sum overflows
    assert Guard("raise", [("big", big)]).allows_update()
    big[2] = np.inf
    with pytest.raises(NonFiniteError):
        Guard("raise", [(type("V", (), {"name": "big"})(), big)]).allows_update()
