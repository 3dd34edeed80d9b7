"""One optimizer call per group of small parameters: contiguous state, one fused update.

A train step of a small model is Python-dispatch bound: Adam costs ~12 NumPy calls per
parameter whatever its size (W1's MLP: 4 parameters, 0.029 of 0.064 ms). At build the
session groups the optimizer nodes of the update phase that share their op, attributes and
scalar inputs (lr, momentum, betas, eps: the same objects) and whose parameters are small,
and re-binds every member's weight and optimizer slots (``Value.data``) as views into one
flat buffer per slot, and pins every member's gradient into one flat gradient buffer (the
gradient's producer writes straight into it; it is planned outside the arena). The step
then calls the op's own kernel once on the flat buffers (or its calls bound once:
``optim.planned_adam`` / ``planned_momentum`` / ``planned_sgd``, which skip the kernel's
per-call Python, W1's Adam 9.0 -> 7.0 us): the same element-wise arithmetic in the same
order on the same values, so the results are bit-for-bit those of the per-node calls,
which stay bound (accumulate-gradients mode, virtual batches,
``apply_gradients`` and the traced loop run them, on the same views).

Weights stay ordinary arrays to everything else: reads, in-place ``data[...] =`` writes
(update weights, set lr) and exports see the views.
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import Node, Value
from todkit.opset.optim import planned_adam, planned_momentum, planned_sgd
from todkit.opset.registry import OPS

# op -> (state inputs flattened, gradient input, scalar inputs shared by the group,
#        inputs that are state when shaped like the param and shared scalars otherwise)
FUSABLE = {
    "Adam": ((0, 1, 2), 9, (3, 4, 5, 6, 7, 8), ()),
    "ApplyMomentum": ((0, 1), 3, (2, 4), ()),
    "SGD": ((0, 3), 1, (2, 4), (5,)),
}
# Parameters larger than this are updated by their own call: one more call costs nothing
# next to their arithmetic, and their gradients stay in the arena (planned memory).
MAX_FUSED_SIZE = 1 << 16


class Group:
    """Members (optimizer nodes, execution order) and their flat buffers."""

    def __init__(self, op: str, members: list[Node], states: tuple[int, ...], grad: int,
                 shared: tuple[int, ...]):
        self.op, self.members, self.states = op, members, states
        self.grad_index, self.shared = grad, shared
        dt = members[0].inputs[0].data.dtype
        sizes = [n.inputs[0].data.size for n in members]
        self.offsets = np.concatenate([[0], np.cumsum(sizes)]).tolist()
        total = self.offsets[-1]
        self.flat: dict[int, np.ndarray] = {}
        for k in states:  # re-bind weights and slots as views of one buffer per slot
            flat = np.empty(total, dt)
            for n, a, b in zip(members, self.offsets, self.offsets[1:]):
                v = n.inputs[k]
                flat[a:b] = v.data.reshape(-1)
                view = flat[a:b].reshape(v.data.shape)
                view.flags.writeable = v.data.flags.writeable
                v.data = view
            self.flat[k] = flat
        self.dtype = dt
        self.nbytes = total * dt.itemsize
        self.grad_ids = [id(n.inputs[grad]) for n in members]
        self.offset = 0  # of the flat gradient in the session's arena (set by the session)
        self.grad = np.zeros(total, dt)
        self.workspace = np.empty(total, dt)

    def place(self, arena: np.ndarray) -> dict[int, np.ndarray]:
        """Cut the flat gradient out of ``arena`` at ``offset``: id(gradient) -> its view."""
        self.grad = arena[self.offset:self.offset + self.nbytes].view(self.dtype)
        return {id(n.inputs[self.grad_index]): self.grad[a:b].reshape(
                    n.inputs[self.grad_index].type.shape)
                for n, a, b in zip(self.members, self.offsets, self.offsets[1:])}

    def grad_values(self) -> list[Value]:
        return [n.inputs[self.grad_index] for n in self.members]

    def entry(self, first: list, attrs: dict, needed_outs: list) -> tuple:
        """The fused call: the op's kernel on the flat buffers, scalars from ``first``, the
        first member's bound inputs (an lr pinned by set_learning_rate included);
        ``needed_outs``: the members' outputs something reads (zeroed as each kernel does)."""
        ins = list(first)
        for k in self.states:
            ins[k] = self.flat[k]
        ins[self.grad_index] = self.grad
        outs = [np.zeros(1, self.grad.dtype), self.workspace]
        kernel = OPS[self.op].kernel
        run = None
        if self.op == "Adam" and not attrs.get("use_nesterov"):
            run = planned_adam(ins, outs)
        elif self.op == "SGD":
            run = planned_sgd(ins, outs, attrs)
        elif self.op == "ApplyMomentum":
            run = planned_momentum(ins, outs, attrs)
        extra = tuple(needed_outs)
        if run is not None:  # the kernel's calls with what it derives per call made once
            def planned_update(ins, outs, a, rt, _run=run, _extra=extra):
                _run()
                for d in _extra:
                    d.fill(0)
            planned_update.__name__ = f"fused_{self.op.lower()}"
            return planned_update, ins, outs, attrs
        if not needed_outs:
            return kernel, ins, outs, attrs

        def fused(ins, outs, a, rt, _kernel=kernel, _extra=extra):
            _kernel(ins, outs, a, rt)
            for d in _extra:
                d.fill(0)
        return fused, ins, outs, attrs


def _attrs_key(attrs: dict):
    try:
        return tuple(sorted((k, v if not isinstance(v, list) else tuple(v))
                            for k, v in attrs.items()))
    except TypeError:
        return None


def plan_groups(order: list[Node], update_start: int, optimizers: list[Node],
                aliased: set[int], inputs: set[int]) -> list[Group]:
    """Groups of optimizer nodes in ``order[update_start:]`` that one call can update."""
    pos = {id(n): i for i, n in enumerate(order)}
    mutated: dict[int, int] = {}  # id(value) -> how many nodes update it in place
    for n in order:
        for k in OPS[n.op].mutates:
            if k < len(n.inputs):
                mutated[id(n.inputs[k])] = mutated.get(id(n.inputs[k]), 0) + 1
    readers: dict[int, int] = {}
    for n in order:
        for v in n.inputs:
            readers[id(v)] = readers.get(id(v), 0) + 1
    by_key: dict[tuple, list[Node]] = {}
    for n in optimizers:
        spec = FUSABLE.get(n.op)
        if spec is None or pos.get(id(n), -1) < update_start:
            continue
        states, grad, shared, either = spec
        p = n.inputs[0]
        if not p.is_const or p.data.dtype.kind != "f" or p.data.size > MAX_FUSED_SIZE:
            continue
        st = list(states)
        sh = list(shared)
        for k in either:
            (st if n.inputs[k].is_const and n.inputs[k].data.size == p.data.size
             and n.inputs[k].data.size > 1 else sh).append(k)
        ok = all(n.inputs[k].is_const and n.inputs[k].data.dtype == p.data.dtype
                 and n.inputs[k].data.size == p.data.size
                 and n.inputs[k].data.flags.c_contiguous
                 and mutated.get(id(n.inputs[k])) == 1 for k in st)
        g = n.inputs[grad]
        ok = ok and not g.is_const and id(g) not in aliased and id(g) not in inputs \
            and id(g) not in mutated and readers.get(id(g)) == 1 and g.type.size == p.data.size
        attrs = _attrs_key(n.attrs)
        if not ok or attrs is None:
            continue
        key = (n.op, p.data.dtype.str, attrs, tuple(st), tuple(sh),
               tuple(id(n.inputs[k]) for k in sh))
        by_key.setdefault(key, []).append(n)
    groups = []
    for key, members in by_key.items():
        if len(members) < 2:
            continue
        ids = [id(v) for n in members for v in n.inputs]
        if len({id(n.inputs[k]) for n in members for k in key[3]}) != len(members) * len(key[3]):
            continue  # a weight or slot shared between members
        # Moving every member to the first one's step must not reorder it against a node
        # in between that writes what a member reads or reads what a member writes.
        span = sorted(pos[id(m)] for m in members)
        member_ids = {id(m) for m in members}
        touched = set(ids) | {id(v) for m in members for v in m.outputs}
        written = {id(m.inputs[k]) for m in members for k in OPS[m.op].mutates}
        written |= {id(v) for m in members for v in m.outputs}
        clash = False
        for n in order[span[0]:span[-1] + 1]:
            if id(n) in member_ids:
                continue
            if any(id(n.inputs[k]) in touched for k in OPS[n.op].mutates
                   if k < len(n.inputs)) or any(id(v) in written for v in n.inputs) \
                    or any(id(v) in touched for v in n.outputs):
                clash = True
                break
        if not clash:
            groups.append(Group(key[0], members, key[3], FUSABLE[key[0]][1], key[4]))
    return groups
