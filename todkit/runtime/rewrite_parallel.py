"""A session with more than one thread (``lite.Context(thread_num)``): large calls whose work
splits into independent pieces run those pieces on the worker pool (runtime/workers.py).

NumPy releases the GIL in its loops, so Python threads each running a piece of one kernel
run at once (compute-bound pieces: ~1.85x on the 2-core bench machine; passes that stream
memory gain 1.05-1.15x, one core nearly fills its memory bandwidth). Six ways a call
is split:
- by samples: ops whose output sample i depends only on input sample i (convolution
  forward, depthwise included, the input gradient of a convolution, pooling and its
  gradients, channel Concat, broadcasting element-wise ops): the same kernel on parts of
  the batch, each with its own workspace (cut from the planned one when the parts' needs
  fit in it, else from a spare buffer of that part; a forward making its columns a chunk
  at a time gives each piece its share of the planned chunk, ``conv.COLUMN_CHUNK``, and a
  depthwise forward's pieces block by their buffers' bytes, ``DEPTHWISE_PIECE_BYTES``);
- by flat ranges: element-wise ops over operands of one size and the optimizers (their
  update is element-wise): the kernel on contiguous ranges of every full-size operand;
- a Dense on a transposed input (rewrite_transposed_input's calls, W3): its copies by
  rows, the forward product by its contracted axis (partial products summed in piece
  order: float rounding), the gradient by its columns (``split_call``);
- by blocks: BatchNorm, BatchNormGrad and the fused BatchNorm calls of the earlier
  rewriters (rewrite_norm_act, rewrite_conv_norm) get ``norm.PARALLEL`` in their
  attributes and run their block loops in parts themselves: the batch statistics are
  per-block partial sums combined afterwards in the same order, so they stay whole-batch
  statistics with the 1-thread bits.
- by output channels: a forward convolution whose one product has a weight operand made
  from its weight and few rows (ResNet18's 2x2 and 1x1 layers: ``conv.channel_pieces``),
  each piece making only its rows of it (W6 2T forward 16.2 -> 15.5 ms);
- in phases: a forward convolution whose im2col columns its filter gradient reads, and the
  filter gradients (``_columns_split``: conv.forward_pieces, conv.filter_pieces): columns
  and forward products by samples, each piece filling its own rows of the shared columns;
  filter gradients remake their columns by samples (unless the forward filled them), then
  their products run by output channels (a sum over the batch cannot be cut by samples
  without changing its order).
Every element is computed as the whole call computes it, so the results are the 1-thread
ones bit for bit, except where a piece is a BLAS product cut by rows (im2col and 1x1
convolutions, the input gradient): OpenBLAS rounds a row by its position in the product
(rows cut at multiples of 24 keep their bits on this machine's Haswell kernel, others do
not), so those equal the 1-thread results to float rounding, as 2 BLAS threads did.
Steps of the executor's stages (runtime/overlap.py: weight gradients beside the backward
chain) are left whole. Registered last in ``REWRITERS``: it wraps what the earlier
rewriters chose (their fused calls run on the same views). BLAS runs one thread per piece meanwhile
(``Parallel.run_tasks``). Not split: other batch reductions (BiasAddGrad, the loss),
other nodes that share a keyed workspace, random ops, calls below ``MIN_VALUES`` /
``MIN_STREAM_VALUES`` / ``MIN_PRODUCTS`` (a hand-off costs ~13 us), and nothing at all in
an executor that keeps a large matrix product unsplit (``_blas_left``): that one wants
BLAS's own threads, which then spin on the second core.
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset import conv
from todkit.opset.conv import COLUMN_CHUNK, DEPTHWISE_BUFFER
from todkit.opset.norm import PARALLEL
from todkit.opset.registry import WORKSPACE_FILLED, WORKSPACE_PRIVATE, get_op
from todkit.runtime.overlap import multiply_adds
from todkit.runtime.rewrite_transposed_input import split_call
from todkit.runtime.workers import Parallel, ranges

# Fewest values in a call's largest output (or input) worth splitting. Measured on W4/W5's
# calls (fastest of 7, pieces against the whole call at one BLAS thread): pooling 1.3-2.0x
# from 650K values, Concat 1.1-1.7x from 500K but 0.65-0.7x at 200-300K.
MIN_VALUES = 1 << 19
# The same for the cheap element-wise ops, which stream memory at a few ns per value:
# GoogleNet's ReLUs of 0.2-2.4M values ran 0.3-1.2x split, MobileNetV2's Adds 0.3-0.8x.
STREAM_OPS = frozenset({"ReLU", "ReLU6", "ReluGrad", "ReLU6Grad", "Add", "Sub", "Mul",
                        "RealDiv", "BiasAdd", "AddN", "Neg"})
MIN_STREAM_VALUES = 1 << 22
MIN_PRODUCTS = 1 << 22  # fewest multiply-adds of a convolution worth splitting (~0.1 ms)
# The column-sharing convolutions and filter gradients are split (``_columns_split``) only
# in an executor where one of them makes at least this many multiply-adds. Pieces of such
# products on one BLAS thread each run as fast as BLAS's own two threads (ResNet18's, W6,
# 37-77 M: 1.53x and 1.55x of one thread), and the rest of the step splits too (W6 at 2
# threads 53.6 -> 52.5 ms); smaller ones run faster on BLAS's threads (LeNet's 7.7 M, W2:
# 1.98 ms per step whole, 2.46 split), and the step then stays BLAS-threaded.
COLUMNS_SPLIT_PRODUCTS = 1 << 25
# Multiply-adds of an unsplit matrix product that turn splitting off (``_blas_left``).
BLAS_LEFT_PRODUCTS = 1 << 22
ALIGN = 64  # bytes: pieces of a planned workspace start on a cache line
# A depthwise piece's block buffers (input rows and products, ``conv.DEPTHWISE_BUFFER``):
# per piece at 2 threads, fastest of 11, W4's layers (ms, 256 KB output blocks -> these):
# [16,56,56,144] 15.2 -> 9.7-10.0, [16,112,112,32] 8.4-9.3 -> 6.7-7.0, the stride-2 layers
# within noise (their input rows, ~4x the output block, had taken 1.35 MB per piece: the
# two pieces' buffers were W4's 2-thread memory peak).
DEPTHWISE_PIECE_BYTES = 1 << 20

# Ops whose output sample i reads only input sample i: op -> which inputs are per sample
# (None: every input that has the batch axis, as the broadcasting element-wise ops).
SAMPLE_OPS = {
    "Conv2D": (0,), "Conv2DBackpropInput": (0,), "MaxPool": (0,), "AvgPool": (0,),
    "MaxPoolGrad": (0, 1, 2), "AvgPoolGrad": (0, 1, 2), "BiasAdd": (0,), "Concat": None,
    "Add": None, "Sub": None, "Mul": None, "RealDiv": None,
}
# Element-wise ops (every array operand of the output's size, or one value) and the
# optimizers, whose update is element-wise over the parameter and its slots.
FLAT_OPS = frozenset({
    "ReLU", "ReLU6", "ReluGrad", "ReLU6Grad", "Sigmoid", "SigmoidGrad", "Tanh", "TanhGrad",
    "Add", "Sub", "Mul", "RealDiv", "AddN", "Neg",
    "ApplyMomentum", "Adam", "AdamWeightDecay", "SGD",
})
# Modules whose kernels hand their attributes to norm.py's block loops, which read
# ``PARALLEL`` (BatchNorm's own kernels, and the fused calls built on them).
NORM_MODULES = frozenset({"todkit.opset.norm", "todkit.runtime.rewrite_norm_act",
                          "todkit.runtime.rewrite_conv_norm"})


def _split_call(kernel, pieces, par):
    """One call running ``kernel`` on each piece's (ins, outs, attrs) at once."""
    def parallel_call(ins, outs, a, rt):
        par.run_tasks([lambda i=i, o=o, at=at: kernel(i, o, at, rt) for i, o, at in pieces])
    return parallel_call


def _batch_inputs(node, ins, out_shape) -> list[bool] | None:
    """Which inputs are cut by samples (the rest are read whole), or None: not splittable."""
    which = SAMPLE_OPS[node.op]
    n = out_shape[0]
    if node.op == "Concat" and int(node.attrs["axis"]) % len(out_shape) == 0:
        return None
    if which is not None:
        return [i in which for i in range(len(ins))]
    cut = []
    for a in ins:
        if a.ndim == len(out_shape) and a.shape[0] == n:
            cut.append(True)
        elif a.ndim < len(out_shape) or a.shape[0] == 1:
            cut.append(False)  # broadcast over the batch
        else:
            return None
    return cut


def _part_attrs(node, attrs, lo, hi, outs, parts):
    if node.op == "Conv2DBackpropInput":  # x's NCHW shape: its batch is the piece's
        return {**attrs, "input_sizes": (hi - lo, *tuple(attrs["input_sizes"])[1:])}
    if node.op != "Conv2D":
        return attrs
    if int(attrs.get("group", 1)) > 1:
        # A depthwise forward's pieces block by their buffers' bytes (conv._depthwise_nhwc)
        return {**attrs, DEPTHWISE_BUFFER: DEPTHWISE_PIECE_BYTES}
    if attrs.get(WORKSPACE_PRIVATE) and len(outs) > 2:
        # A forward making its columns a chunk at a time: each piece makes chunks of its
        # share of the planned chunk, so the pieces' chunks fit in it (W4's first layer: a
        # 3.9 MB spare buffer otherwise; a chunk's size changes no product's terms).
        share = outs[2].nbytes // parts // ALIGN * ALIGN
        if share > 0:
            return {**attrs, COLUMN_CHUNK: share}
    return attrs


def _same_or_apart(outs, ins, cut) -> bool:
    """Each output shares no byte with an input, or is exactly a per-sample input (in place):
    a piece then writes only the bytes it alone reads."""
    for o in outs:
        for a, c in zip(ins, cut):
            if not np.shares_memory(o, a):
                continue
            if not (c and o.__array_interface__["data"][0] == a.__array_interface__["data"][0]
                    and o.shape == a.shape and o.strides == a.strides):
                return False
    return True


def _workspaces(planned, types, part_need):
    """Views for one piece's workspaces ``types``: cut from the planned ones while they
    have room (``planned``: [flat bytes, used] each), else placeholders ("spare", offset,
    type) in this piece's spare bytes (``part_need[0]``: bytes so far), cut once the
    spare buffer is made (``_bind_spares``)."""
    views = []
    for k, t in enumerate(types):
        nbytes = t.nbytes
        buf = planned[k]
        start = -(-buf[1] // ALIGN) * ALIGN
        if start + nbytes <= buf[0].nbytes:
            views.append(buf[0][start:start + nbytes].view(t.dtype.np).reshape(t.shape))
            buf[1] = start + nbytes
        else:
            views.append(("spare", part_need[0], t))
            part_need[0] = -(-(part_need[0] + nbytes) // ALIGN) * ALIGN
    return views


def _pieces(ex, step, cuts, cut_ins, attrs_for):
    """(ins, outs, attrs) per piece, workspaces placed, or None (a workspace list that
    differs from the planned one). ``cuts``: the pieces' (lo, hi); ``cut_ins(a, k, lo, hi)``
    and the outputs' cut, ``attrs_for(lo, hi)``."""
    node = ex.nodes[step]
    opdef = get_op(node.op)
    _, ins, outs, _ = ex.bound[step]
    n_out = len(node.outputs)
    planned = [[w.reshape(-1).view(np.uint8), 0] for w in outs[n_out:]]
    pieces, needs = [], []
    for lo, hi in cuts:
        p_ins = [cut_ins(a, k, lo, hi) for k, a in enumerate(ins)]
        p_attrs = attrs_for(lo, hi)
        types = opdef.workspace_types(
            [TensorType(a.shape, v.type.dtype) for a, v in zip(p_ins, node.inputs)], p_attrs)
        if len(types) != len(planned):
            return None
        need = [0]
        ws = _workspaces(planned, types, need)
        p_outs = [cut_ins(o, -1 - k, lo, hi) for k, o in enumerate(outs[:n_out])]
        pieces.append([p_ins, p_outs, ws, p_attrs])
        needs.append(need[0])
    return pieces, needs


def _bind_spares(pieces, needs, par) -> list[tuple]:
    """Cut each piece's spare workspaces out of its part's spare buffer (made here)."""
    done = []
    for p, ((p_ins, p_outs, ws, p_attrs), need) in enumerate(zip(pieces, needs)):
        if need:
            par.reserve(p, need)
            spare = par.spare(p, need)
            ws = [w if not isinstance(w, tuple) else
                  spare[w[1]:w[1] + w[2].nbytes].view(w[2].dtype.np).reshape(w[2].shape)
                  for w in ws]
        done.append((p_ins, p_outs + ws, p_attrs))
    return done


def _big(arrays) -> bool:
    return max((a.size for a in arrays), default=0) >= MIN_VALUES


def _worth(node, ins, outs) -> bool:
    """Enough work for two hand-offs: ``MIN_VALUES`` values touched (``MIN_STREAM_VALUES``
    for the cheap element-wise ops), or for a convolution ``MIN_PRODUCTS`` multiply-adds
    (ResNet18's last 3x3 layers write 32K values but make 151 M products)."""
    if node.op in ("Conv2D", "Conv2DBackpropInput", "Conv2DBackpropFilter"):
        return _products(node, ins, outs) >= MIN_PRODUCTS
    values = max(a.size for a in list(ins) + list(outs[:len(node.outputs)]))
    return values >= (MIN_STREAM_VALUES if node.op in STREAM_OPS else MIN_VALUES)


def _sample_split(ex, step, par):
    node = ex.nodes[step]
    kernel, ins, outs, attrs = ex.bound[step]
    n_out = len(node.outputs)
    if node.op not in SAMPLE_OPS or not node.outputs or outs[0].ndim < 2:
        return None
    n = outs[0].shape[0]
    cut = _batch_inputs(node, ins, outs[0].shape)
    if cut is None or n < 2 or any(o.shape[:1] != (n,) for o in outs[:n_out]):
        return None
    if not _same_or_apart(outs[:n_out], ins, cut):
        return None
    cuts = ranges(n, par.parts)

    def cut_ins(a, k, lo, hi):
        return a[lo:hi] if k < 0 or cut[k] else a
    found = _pieces(ex, step, cuts, cut_ins,
                    lambda lo, hi: _part_attrs(node, attrs, lo, hi, outs, len(cuts)))
    if found is None:
        return None
    return _split_call(kernel, _bind_spares(*found, par), par)


def _flat_split(ex, step, par):
    node = ex.nodes[step]
    kernel, ins, outs, attrs = ex.bound[step]
    n_out = len(node.outputs)
    size = ins[0].size if node.op in ("ApplyMomentum", "Adam", "AdamWeightDecay", "SGD") \
        else outs[0].size
    full = [a.size == size for a in ins]
    if size < 2 or not all(f or a.size == 1 for f, a in zip(full, ins)):
        return None
    arrays = [a for a, f in zip(ins, full) if f] + [o for o in outs[:n_out] if o.size == size]
    if not all(a.flags.c_contiguous for a in arrays):
        return None
    if not _same_or_apart([o for o in outs[:n_out] if o.size == size], ins, full):
        return None
    # Cut at multiples of 16 values: no two pieces write one cache line.
    blocks = -(-size // 16)
    cuts = [(lo * 16, min(hi * 16, size)) for lo, hi in ranges(blocks, par.parts)]
    if len(cuts) < 2:
        return None

    def cut_ins(a, k, lo, hi):
        if a.size == size:
            return a.reshape(-1)[lo:hi]
        if k < 0 and lo > 0:  # an optimizer's dummy output: only the first piece's is read
            return np.zeros_like(a)
        return a
    found = _pieces(ex, step, cuts, cut_ins, lambda lo, hi: attrs)
    if found is None:
        return None
    return _split_call(kernel, _bind_spares(*found, par), par)


def _norm_call(entry, par):
    kernel, ins, outs, attrs = entry
    if getattr(kernel, "__module__", None) not in NORM_MODULES or not _big(ins[:1]):
        return None
    return (kernel, ins, outs, {**attrs, PARALLEL: par})


def _shares_workspace(ex, step) -> bool:
    """The node fills or reads a workspace another node shares (keyed columns)."""
    node = ex.nodes[step]
    opdef = get_op(node.op)
    if step in ex.filled or WORKSPACE_FILLED in ex.bound[step][3]:
        return True
    return bool(opdef.workspace_key and opdef.workspace_key(node)) and step not in ex.private


def _phased_call(phases, par):
    """One call running each phase's tasks at once, the phases one after the other."""
    def phased_call(ins, outs, a, rt):
        for tasks in phases:
            par.run_tasks(tasks)
    return phased_call


def _columns_split(ex, step, par):
    """A forward convolution making columns its filter gradient reads (pieces by samples,
    each filling its rows of them) or a filter gradient (its columns by samples unless the
    forward pass filled them, then its products by output channels): ``conv.forward_pieces``
    and ``conv.filter_pieces``. None where the kernel takes another path."""
    node = ex.nodes[step]
    _, ins, outs, attrs = ex.bound[step]
    samples = ranges(ins[0].shape[0] if node.op == "Conv2D" else ins[1].shape[0], par.parts)
    if len(samples) < 2:
        return None
    if node.op == "Conv2D":
        tasks = conv.forward_pieces(ins[0], ins[1], outs[0], attrs, outs, samples)
        return None if tasks is None else _phased_call([tasks], par)
    found = conv.filter_pieces(ins[0], ins[1], outs[0], attrs, outs, samples,
                               ranges(outs[0].shape[0], par.parts))
    return None if found is None else _phased_call([p for p in found if p], par)


def _channel_split(ex, step, par):
    """A forward convolution whose one product has a weight operand made from its weight
    and few rows (``conv.channel_pieces``), by output channels; None otherwise."""
    _, ins, outs, attrs = ex.bound[step]
    tasks = conv.channel_pieces(ins[0], ins[1], outs[0], attrs, outs,
                                ranges(ins[1].shape[0], par.parts),
                                lambda part, size: par.scratch(part, size, ins[0].dtype))
    return None if tasks is None else _phased_call([tasks], par)


def _plain(ex, ctx, step, par):
    """The split call for node ``step``'s own bound kernel, or None."""
    node = ex.nodes[step]
    kernel, ins, outs, attrs = ex.bound[step]
    if kernel is not get_op(node.op).kernel or not _worth(node, ins, outs):
        return None
    if node.op == "Conv2D" and (call := _channel_split(ex, step, par)) is not None:
        return call, ins, outs, attrs
    if node.op == "Conv2DBackpropFilter" or (node.op == "Conv2D"
                                             and _shares_workspace(ex, step)):
        call = _columns_split(ex, step, par)
        return None if call is None else (call, ins, outs, attrs)
    if _shares_workspace(ex, step):
        return None
    norm = _norm_call(ex.bound[step], par)
    if norm is not None:
        return norm
    call = None
    if node.op in FLAT_OPS:
        call = _flat_split(ex, step, par)
    if call is None and node.op in SAMPLE_OPS:
        call = _sample_split(ex, step, par)
    return None if call is None else (call, ins, outs, ex.bound[step][3])


def _products(node, ins, outs) -> int:
    """Multiply-adds of a matrix-product op's call (0 for other ops)."""
    return multiply_adds(node.op, [a.shape for a in ins],
                         [o.shape for o in outs[:len(node.outputs)]])


def _staged(ex) -> set[int]:
    """Steps of the executor's stages (runtime/overlap.py): the side nodes and their
    windows run whole, each on one core, while a stage runs."""
    return {k for s, e in getattr(ex, "stages", {}).items() for k in range(s, e + 1)}


def _blas_left(ex, fused) -> bool:
    """A large matrix product stays unsplit: it wants BLAS's own threads, and OpenBLAS's
    threads spin ~0.1 s after each product they share, taking the second core from the
    workers (W6: 52.6 -> 63.4 ms per step with its products at 2 BLAS threads and the rest
    split; a split multiply right after a 2-thread product ran 4.5 ms against 2.3)."""
    for step, node in enumerate(ex.nodes):
        if step in fused:
            continue
        _, ins, outs, _ = ex.bound[step]
        if _products(node, ins, outs) >= BLAS_LEFT_PRODUCTS:
            return True
    return False


def rewrite_parallel(ex, ctx) -> dict:
    """{step: split call} for every large splittable call, wrapping the fused BatchNorm
    calls earlier rewriters chose (``ctx.chosen``); nothing when a large matrix product
    cannot be split (``_blas_left``): the step then runs as before, BLAS threaded."""
    if ctx.threads <= 1:
        return {}
    par = Parallel(ctx.threads)
    fused: dict = {}
    phased: dict[int, int] = {}  # step -> products of a ``_columns_split`` call
    staged = _staged(ex)
    for step in range(len(ex.nodes)):
        if step in staged:
            continue
        if step in ctx.taken:
            entry = ctx.chosen.get(step)
            if entry is None:
                continue
            wrapped = _norm_call(entry, par)
            if wrapped is None and _products(ex.nodes[step], *ex.bound[step][1:3]) \
                    >= MIN_PRODUCTS:  # a Dense on a transposed input (W3)
                wrapped = split_call(entry, par.parts, par.run_tasks)
            if wrapped is not None:
                fused[step] = wrapped
            continue
        entry = _plain(ex, ctx, step, par)
        if entry is not None:
            fused[step] = entry
            if getattr(entry[0], "__name__", "") == "phased_call":
                phased[step] = _products(ex.nodes[step], *ex.bound[step][1:3])
    if phased and max(phased.values()) < COLUMNS_SPLIT_PRODUCTS:
        for step in phased:
            del fused[step]
    covered = set(fused) | staged | {s for s in ctx.taken
                                     if s in ctx.chosen and ctx.chosen[s] is None}
    return {} if _blas_left(ex, covered) else fused


rewrite_parallel.wraps = True  # may return, for a step an earlier rewriter took, a wrap of it
