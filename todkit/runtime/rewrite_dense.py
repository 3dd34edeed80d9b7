"""Dense layers and scalar state updates as fewer, leaner calls (issue 6, W1/W7).

A small model's step is bound by Python and NumPy dispatch (~1 us a call, W1's arithmetic
is nanoseconds), so this rewriter cuts calls and the per-kernel Python around them:
- ``MatMul -> BiasAdd (-> ReLU)`` whose intermediates nothing else reads: one call, the
  product written straight into the last output, then the bias and the clip in place;
- ``MatMul -> ReluGrad`` (the input gradient through a ReLU): the product into the
  gradient, then the mask (into a buffer kept by the call) multiplied in place;
- any other MatMul and 2-D BiasAddGrad: the NumPy call on operands transposed once at
  build (the op kernels re-derive views, flags and attributes every step);
- SparseSoftmaxCrossEntropyWithLogits (loss and is_grad): the kernel's NumPy calls with
  the views and constants it derives per call made once (``opset/loss.planned_sparse_ce``);
- runs of one-value ``Mul`` / ``Assign`` / ``AssignAdd`` (Adam's beta powers and the
  global step): one call; an Assign's output copy only when something reads it. A later
  update joins the run across steps that touch none of its memory (W1's step counter
  moves before the fused Adam call, which reads nothing of it).

Each replacement makes the same NumPy calls on the same operands in the same order as the
per-node kernels, so the results are bit for bit theirs (tests/test_perf_w1_dense.py);
the intermediates are simply not written. The rules of ``runtime/rewrite.py`` hold: taken
steps and steps not bound to their op's own kernel are left alone, a run stays on one side
of the update split, a value whose write is dropped is read by no other step, no view and
nothing after the step.
"""

from __future__ import annotations

import numpy as np

from todkit.opset.loss import planned_sparse_ce
from todkit.opset.registry import get_op

_dot = np.dot
_add = np.add
_maximum = np.maximum
_multiply = np.multiply
_greater = np.greater
_add_reduce = np.add.reduce

_SCALAR_OPS = ("Mul", "Assign", "AssignAdd")
_SCE = "SparseSoftmaxCrossEntropyWithLogits"


def _matmul(ins, outs, a, rt):
    _dot(ins[0], ins[1], out=outs[0])


def _matmul_bias(ins, outs, a, rt):
    y = outs[0]
    _dot(ins[0], ins[1], out=y)
    _add(y, ins[2], out=y)


def _matmul_bias_relu(ins, outs, a, rt):
    y = outs[0]
    _dot(ins[0], ins[1], out=y)
    _add(y, ins[2], out=y)
    _maximum(y, 0, out=y)


def _matmul_relu_grad(ins, outs, a, rt):
    dx, mask = outs
    _dot(ins[0], ins[1], out=dx)
    _greater(ins[2], 0, out=mask)
    _multiply(dx, mask, out=dx)


def _bias_grad(ins, outs, a, rt):
    _add_reduce(ins[0], axis=0, out=outs[0])


def _planned(run):
    """A call entry's function running ``run()`` (its arrays are bound in the closure)."""

    def planned(ins, outs, a, rt, _run=run):
        _run()
    return planned


# One-value float arithmetic on NumPy scalars: the same IEEE operation in the same dtype as
# the ufunc on the [1] arrays (same bits), at half its dispatch (0.12 against 0.22 us; a
# copy 0.06 against 0.20).
def _mul_item(a, b, out):
    out[0] = a[0] * b[0]


def _add_item(a, b, out):
    out[0] = a[0] + b[0]


def _add_int_item(a, b, out, low: int, span: int):
    """Integer add in Python ints wrapped into the dtype's range (0.25 us; the int32 ufunc
    on [1] arrays 0.66, a NumPy scalar add warns on overflow)."""
    out[0] = (int(a[0]) + int(b[0]) - low) % span + low


def _copy_item(dst, src):
    dst[0] = src[0]


def _scalars(ins, outs, a, rt):
    for fn, args in a["ops"]:
        fn(*args)


class _Graph:
    """What the checks need to know about one executor's nodes."""

    def __init__(self, ex, ctx):
        self.ex, self.ctx = ex, ctx
        self.done: set[int] = set()  # steps this rewriter replaced already
        self.readers: dict[int, list[int]] = {}
        for step, node in enumerate(ex.nodes):
            for v in node.inputs:
                self.readers.setdefault(id(v), []).append(step)
        self.viewed: dict[int, set[int]] = {}  # id(root) -> ids of values viewing its bytes
        for k, root in ex.aliases.items():
            if k not in ex.inplace:  # an in-place output writes the bytes, it reads nothing
                self.viewed.setdefault(id(root), set()).add(k)

    def own(self, step: int, op: str) -> bool:
        """Node ``step`` is ``op``, not yet replaced, bound to the op's own kernel."""
        ex = self.ex
        return (0 <= step < len(ex.nodes) and ex.nodes[step].op == op
                and step not in self.ctx.taken and step not in self.done
                and ex.bound[step][0] is get_op(op).kernel)

    def private(self, v, reader: int, chain: set[int]) -> bool:
        """Only step ``reader`` reads ``v``, nothing reads it after the step, and no value
        outside ``chain`` (ids) views its bytes: its write may be dropped."""
        return (self.readers.get(id(v)) == [reader] and id(v) not in self.ctx.outside
                and self.viewed.get(id(v), set()) <= chain)

    def same_side(self, *steps: int) -> bool:
        return len({s < self.ctx.split for s in steps}) == 1


def _operands(ex, step: int) -> tuple | None:
    """MatMul ``step``'s operands as ``np.dot`` takes them (views transposed once) and its
    output, if its kernel would call ``np.dot`` (float, one dtype, contiguous output)."""
    (x, w), out = ex.bound[step][1], ex.bound[step][2][0]
    a = ex.nodes[step].attrs
    if not (out.flags.c_contiguous and out.dtype == x.dtype == w.dtype and x.dtype.kind == "f"):
        return None
    return (x.T if a["transpose_a"] else x), (w.T if a["transpose_b"] else w), out


def _disjoint(out: np.ndarray, arrays) -> bool:
    return not any(np.may_share_memory(out, a) for a in arrays)


def _dense_chain(g: _Graph, step: int) -> dict | None:
    """MatMul -> BiasAdd (-> ReLU) from ``step``: {step: call, next: None, ...}."""
    ex = g.ex
    ops = _operands(ex, step)
    if ops is None or not g.own(step + 1, "BiasAdd"):
        return None
    x, w, _ = ops
    mm = ex.nodes[step].outputs[0]
    bias_node = ex.nodes[step + 1]
    y, b = ex.bound[step + 1][1]
    out = ex.bound[step + 1][2][0]
    chain = {id(mm), id(bias_node.outputs[0])}
    if (bias_node.inputs[0] is not mm or y.ndim != 2 or b.dtype != out.dtype
            or not g.private(mm, step + 1, chain) or not g.same_side(step, step + 1)):
        return None
    last, kernel = step + 1, _matmul_bias
    if g.own(step + 2, "ReLU") and ex.nodes[step + 2].inputs[0] is bias_node.outputs[0]:
        relu_out = ex.bound[step + 2][2][0]
        chain.add(id(ex.nodes[step + 2].outputs[0]))
        if (g.private(bias_node.outputs[0], step + 2, chain) and g.same_side(step, step + 2)
                and relu_out.flags.c_contiguous and relu_out.dtype == out.dtype):
            last, kernel, out = step + 2, _matmul_bias_relu, relu_out
    if not out.flags.c_contiguous or not _disjoint(out, (x, w, b)):
        return None
    fused = {step: (kernel, [x, w, b], [out], ex.nodes[last].attrs)}
    fused.update(dict.fromkeys(range(step + 1, last + 1)))
    return fused


def _relu_grad_chain(g: _Graph, step: int) -> dict | None:
    """MatMul (dy @ W) -> ReluGrad(product, y) from ``step``."""
    ex = g.ex
    ops = _operands(ex, step)
    if ops is None or not g.own(step + 1, "ReluGrad") or not g.same_side(step, step + 1):
        return None
    dy, w, _ = ops
    mm = ex.nodes[step].outputs[0]
    node = ex.nodes[step + 1]
    _, y = ex.bound[step + 1][1]
    dx = ex.bound[step + 1][2][0]
    if (node.inputs[0] is not mm or node.inputs[1] is mm or not dx.flags.c_contiguous
            or dx.dtype != y.dtype or not g.private(mm, step + 1, {id(mm)})
            or not _disjoint(dx, (dy, w, y))):
        return None
    mask = np.empty(dx.shape, np.bool_)
    return {step: (_matmul_relu_grad, [dy, w, y], [dx, mask], node.attrs), step + 1: None}


def _lean(g: _Graph, step: int) -> dict | None:
    """A MatMul, 2-D BiasAddGrad or sparse CE loss as its bare NumPy calls."""
    ex = g.ex
    if g.own(step, "MatMul"):
        ops = _operands(ex, step)
        if ops is None:
            return None
        x, w, out = ops
        return {step: (_matmul, [x, w], [out], ex.nodes[step].attrs)}
    if g.own(step, _SCE):
        _, ins, outs, attrs = ex.bound[step]
        run = planned_sparse_ce(ins, outs, attrs)
        return None if run is None else {step: (_planned(run), ins, outs, attrs)}
    if g.own(step, "BiasAddGrad"):
        (dy,), out = ex.bound[step][1], ex.bound[step][2][0]
        if dy.ndim != 2:
            return None
        return {step: (_bias_grad, [dy], [out], ex.nodes[step].attrs)}
    return None


def _scalar_op(g: _Graph, step: int) -> list | None:
    """The ``(fn, args)`` of one-value Mul / Assign / AssignAdd node ``step``, else None.
    Float only, except AssignAdd of integers (the step counter), which ``np.add`` wraps as
    the op's kernel does."""
    ex = g.ex
    node = ex.nodes[step]
    if node.op not in _SCALAR_OPS or not g.own(step, node.op):
        return None
    _, ins, outs, _ = ex.bound[step]
    arrays = list(ins) + list(outs)
    if (len(outs) != 1 or any(a.size != 1 for a in arrays)
            or len({a.dtype for a in arrays}) != 1
            or not (arrays[0].dtype.kind == "f" or node.op == "AssignAdd")):
        return None
    flat = [a.reshape(-1) for a in arrays]  # views (a size-1 array is contiguous)
    if node.op == "Mul":
        return [(_mul_item, (flat[0], flat[1], flat[2]))]
    ref, value, out = flat
    if node.op == "Assign":
        ops = [(_copy_item, (ref, value))]
    elif ref.dtype.kind == "f":
        ops = [(_add_item, (ref, value, ref))]
    else:  # integers (the step counter): wrapped as the kernel's ufunc wraps on overflow
        info = np.iinfo(ref.dtype)
        ops = [(_add_int_item, (ref, value, ref, int(info.min), 1 << info.bits))]
    o = node.outputs[0]
    if id(o) in g.ctx.outside or g.readers.get(id(o)) or g.viewed.get(id(o)):
        ops.append((_copy_item, (out, ref)))
    return ops


def _touches(ex, step: int) -> list[np.ndarray]:
    _, ins, outs, _ = ex.bound[step]
    return [a for a in list(ins) + list(outs) if isinstance(a, np.ndarray)]


def _scalar_runs(g: _Graph) -> dict:
    """Runs of one-value updates as one call each (see the module docstring)."""
    ex = g.ex
    fused: dict = {}
    run: list[int] = []
    ops: list = []

    def close():
        if run:  # even one: its bare ufunc calls, no output copy nothing reads
            fused[run[0]] = (_scalars, [], [], {"ops": tuple(ops)})
            fused.update(dict.fromkeys(run[1:]))
        run.clear()
        ops.clear()

    for step in range(len(ex.nodes)):
        op = _scalar_op(g, step)
        if op is None:
            continue
        if run and not (g.same_side(run[0], step) and _movable(g, run, step, op)):
            close()
        run.append(step)
        ops.extend(op)
    close()
    return fused


def _movable(g: _Graph, run: list[int], step: int, ops: list) -> bool:
    """Node ``step``'s ``ops`` may run with the ``run``, at its first step: no other node
    from there to ``step`` reads or writes memory they read or write (an unread output they
    do not write may share bytes with a between node's scratch; a dead output planned in
    the same bytes as theirs is written by its node after the run)."""
    mine = [a for _, args in ops for a in args]
    members = set(run)
    for between in range(run[0] + 1, step):
        if between in members:
            continue
        if any(np.may_share_memory(a, b) for a in _touches(g.ex, between) for b in mine):
            return False
    return True


def rewrite_dense(ex, ctx) -> dict:
    """``{step: entry or None}`` for the dense chains, lean calls and scalar runs."""
    g = _Graph(ex, ctx)
    fused: dict = {}
    for step in range(len(ex.nodes)):
        if step in fused or not g.own(step, ex.nodes[step].op):
            continue
        found = None
        if ex.nodes[step].op == "MatMul":
            found = _dense_chain(g, step) or _relu_grad_chain(g, step)
        found = found or _lean(g, step)
        if found:
            fused.update(found)
            g.done.update(found)
    fused.update(_scalar_runs(g))
    return fused
