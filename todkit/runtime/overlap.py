"""At two threads, weight gradients run on the worker beside the backward chain.

A backward pass is one chain of dependent calls (input gradient, BatchNorm and ReLU
gradients, adds) plus, hanging off it, the weight gradients: a filter gradient reads the
chain's dy and a forward activation, and nothing in the compute phase reads what it
writes (only the update phase does). Cutting each call into pieces makes every piece
smaller and keeps both cores on one call at a time (ResNet18, W6: 1.4-1.7x from the second
thread on its convolutions, nothing on BatchNorm). Here the chain keeps the caller's
thread, whole calls at one BLAS thread, while the worker runs a weight gradient, also
whole: each call runs as at one thread, so its results are the one-thread bits.

``side_schedule`` reorders the compute phase into stages: a side node, then the run of
chain nodes ("window") that runs while it does, its estimated time about the side node's.
The executor plans every value the side node reads or writes as live over its whole
window (``Executor(stages=)``: its step's span), starts it on the worker at its step and
waits for it after the window's last step (``workers.Side``). A node is a side node when
it is costly (``MIN_SIDE_PRODUCTS``), has no side effect, updates nothing in place, none
of its inputs is updated in place by any node, and none of its outputs is read by a
compute-phase node. Side nodes left when the chain runs out run as windows of one
another where their estimated times are within ``MIN_WINDOW_SHARE``; a side node with too
little chain left beside it runs in the chain.
"""

from __future__ import annotations

import math

from todkit.ir.graph import Node
from todkit.opset import conv
from todkit.opset.registry import get_op
from todkit.runtime.executor import RANDOM_OPS, find_duplicates

# Fewest multiply-adds of a side node (~0.1 ms at one thread): a hand-off costs 15-60 us.
MIN_SIDE_PRODUCTS = 1 << 22
# Estimated seconds per multiply-add and per value read or written (the bench machine,
# one thread: ResNet18's 3x3 convolutions 44 G multiply-adds/s; the filter gradient of a
# 3x3 over 1x1 maps, which writes 8 zero taps, and BatchNorm gradients ~0.25 ns a value).
SECONDS_PER_PRODUCT = 1 / 44e9
SECONDS_PER_VALUE = 0.25e-9
# The planned peak a schedule may reach, against the unstaged order's.
PEAK_TOLERANCE = 1.02
# Least estimated time of a window against its side node's: below it the side node runs in
# the caller's chain as any other call (split into pieces there where it is large).
MIN_WINDOW_SHARE = 0.5
CONV_OPS = frozenset({"Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"})


def _size(shape) -> int:
    return math.prod(shape)


def multiply_adds(op: str, in_shapes, out_shapes) -> int:
    """Multiply-adds of a matrix-product op's call from its operand shapes (0 for others)."""
    if op in ("Conv2D", "Conv2DBackpropInput") and len(in_shapes) > 1 and len(in_shapes[1]) == 4:
        y = out_shapes[0] if op == "Conv2D" else in_shapes[0]
        w = in_shapes[1]
        return _size(y) * (_size(w) // max(1, w[0]))
    if op == "Conv2DBackpropFilter" and out_shapes and len(out_shapes[0]) == 4:
        w = out_shapes[0]
        return _size(in_shapes[0]) * (_size(w) // max(1, w[0]))
    if op in ("MatMul", "BatchMatMul") and len(in_shapes) >= 2 and out_shapes:
        out = _size(out_shapes[0])
        if out:
            # (m,k)(k,n) of the last two axes, whatever the transposes and batch axes
            last2 = [_size(s[-2:]) for s in (in_shapes[0], in_shapes[1], out_shapes[0])]
            inner = (last2[0] * last2[1] / max(1, last2[2])) ** 0.5
            return int(out * inner)
    return 0


def _shapes(values) -> list[tuple[int, ...]]:
    return [tuple(v.type.shape) for v in values]


def node_products(node: Node) -> int:
    return multiply_adds(node.op, _shapes(node.inputs), _shapes(node.outputs))


def node_seconds(node: Node) -> float:
    """A rough one-thread time: the products that read real input, and the values read
    and written (a convolution's weight not counted)."""
    values = node.inputs + node.outputs
    if node.op in CONV_OPS:  # the weight: only its live taps are read (a cut copy)
        macs = conv.live_products(node.op, _shapes(node.inputs), node.attrs)
        values = [v for v in values if not v.is_const]
    else:
        macs = node_products(node)
    values = sum(v.type.size for v in values)
    return macs * SECONDS_PER_PRODUCT + values * SECONDS_PER_VALUE


def _side_nodes(compute: list[Node], mutated: set[int]) -> set[int]:
    """ids of the compute-phase nodes that may run on the worker (not one that repeats
    another's computation, or is repeated: the executor binds the repeat as a view)."""
    read = {id(v) for n in compute for v in n.inputs}
    dups = find_duplicates(compute)
    repeated = set(dups) | {id(v) for v in dups.values()}
    found = set()
    for node in compute:
        opdef = get_op(node.op)
        if (opdef.side_effect or opdef.mutated(node.attrs) or opdef.alias or opdef.inplace
                or node.op in RANDOM_OPS
                or not node.outputs or node_products(node) < MIN_SIDE_PRODUCTS
                or any(id(v) in read or id(v) in repeated for v in node.outputs)
                or any(id(v) in mutated for v in node.inputs)):
            continue
        found.add(id(node))
    return found


def side_schedule(nodes: list[Node], compute_end: int, planned_bytes
                  ) -> tuple[list[Node], list[tuple]]:
    """(order, stages): ``nodes`` with the compute phase (``nodes[:compute_end]``) reordered
    into stages, and ``(side_step, last_window_step)`` per stage in the new order; the
    update phase after it unchanged. No stages (and ``nodes`` as they are) when there is
    nothing to run beside.

    A side node runs beside the chain from when its inputs are ready only while that keeps
    the arena (``planned_bytes(order, stages)``: the executor's plan) within
    ``PEAK_TOLERANCE`` of the unstaged order's: ResNet18's last filter gradients write
    2.4-9.4 MB each from 64-128 KB of inputs, and made early they would be held beside
    every forward activation (W6's arena 47 -> 83 MB). The others run after the chain,
    beside one another."""
    compute, rest = nodes[:compute_end], nodes[compute_end:]
    mutated = {id(n.inputs[k]) for n in nodes for k in get_op(n.op).mutated(n.attrs)
               if k < len(n.inputs)}
    side_ids = _side_nodes(compute, mutated)
    if not side_ids:
        return list(nodes), []
    chain = [n for n in compute if id(n) not in side_ids]
    # A side node's inputs come from chain nodes (no compute node reads a side node's
    # outputs): it is ready once the last of them has run.
    made_at = {id(v): i + 1 for i, n in enumerate(chain) for v in n.outputs}

    def ready(node) -> int:
        return max((made_at.get(id(v), 0) for v in node.inputs), default=0)
    sides = [n for n in compute if id(n) in side_ids]
    limit = planned_bytes(list(nodes), []) * PEAK_TOLERANCE
    early: set[int] = set()
    order, stages = _stages(chain, sides, early, ready)
    if planned_bytes(order + rest, stages) > limit:
        return list(nodes), []
    for side in sorted(sides, key=ready):
        trial = _stages(chain, sides, early | {id(side)}, ready)
        if planned_bytes(trial[0] + rest, trial[1]) <= limit:
            early.add(id(side))
            order, stages = trial
    return order + rest, stages


def _stages(chain, sides, early: set[int], ready):
    """The compute phase in stages: the ``early`` side nodes (in ``ready`` order) beside
    the chain from when they are ready, one at a time; the rest after it in their own
    order (the converter's: each frees its inputs before the next), in pairs."""
    pending = sorted((n for n in sides if id(n) in early), key=ready)
    order: list[Node] = []
    stages: list[tuple[int, int]] = []
    i = 0
    while i < len(chain):
        if pending and ready(pending[0]) <= i:
            side = pending.pop(0)
            budget = node_seconds(side)
            j = _window(chain, i, budget)
            if sum(map(node_seconds, chain[i:j])) < MIN_WINDOW_SHARE * budget:
                order.append(side)  # too little left to run beside: the caller runs it
                continue
            stages.append((len(order), len(order) + j - i))
            order.append(side)
            order.extend(chain[i:j])
            i = j
            continue
        order.append(chain[i])
        i += 1
    placed = {id(n) for n in order}
    late = [n for n in sides if id(n) not in placed]
    k = 0
    while k < len(late):
        pair = late[k:k + 2]
        costs = sorted(map(node_seconds, pair))
        if len(pair) == 2 and costs[0] >= MIN_WINDOW_SHARE * costs[1]:
            stages.append((len(order), len(order) + 1))
            order += pair
            k += 2
        else:
            order.append(late[k])
            k += 1
    return order, stages


def _window(chain, start: int, budget: float) -> int:
    """End (exclusive) of the chain run from ``start`` (at least one node) whose estimated
    time is closest to ``budget``: a node joins while half of it still fits."""
    spent, j = 0.0, start
    while j < len(chain):
        cost = node_seconds(chain[j])
        if j > start and spent + cost / 2 > budget:
            break
        spent += cost
        j += 1
    return j
