"""Optimizer and state-update ops: Adam, ApplyMomentum, SGD, Assign, AssignAdd,
AdamWeightDecay.

They update their state inputs in place (``mutates``) and run in node-list order. The
arithmetic follows MindSpore's CPU / MindSpore Lite kernels (nnacl ``DoAdam``,
``SGDCpuKernelMod``, ``ApplyMomentum``) and stays in the parameter's dtype: scalars are
converted to that dtype first and updates go through in-place ufuncs.

Large parameters are updated block by block (``_blocked``): Adam is a dozen whole-array
passes, and on W3's 1.5 M-value weight each pass re-read its operands from memory or L3;
per block they stay in the core's cache. No element's arithmetic changes, so the results
are bit for bit the whole-array ones.
"""



from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op

# Optimizers return a dummy; the graph only keeps it alive through Depend in MINDIR.
_DUMMY = TensorType((1,), dtypes.float32)


def _check_like(param, others: dict):
    # Element-wise state may be stored in another layout than the weight (the real converter
    # keeps Adam moments of an NHWC conv weight in NCHW shape): equal element count suffices.
    for name, t in others.items():
        if t.dtype != param.dtype or t.size != param.size:
            raise ValueError(f"{name} {t} must match param {param}")


def _like(arr: np.ndarray, shape) -> np.ndarray:
    """A view of ``arr`` with ``shape`` (same element count), so in-place updates land."""
    return arr if arr.shape == shape else arr.reshape(shape)


def _check_scalars(param, scalars: dict):
    for name, t in scalars.items():
        if t.size != 1:
            raise ValueError(f"{name} must hold one value, got shape {list(t.shape)}")
        if t.dtype != param.dtype:
            raise ValueError(f"{name} dtype {t.dtype.name} differs from param {param.dtype.name}")


def _scalar(arr: np.ndarray, dtype) -> np.generic:
    return dtype.type(arr.reshape(-1)[0])


# Elements per block (float32: 256 KB per operand for Adam's five, 1 MB for ApplyMomentum's
# three). Measured on W3's Adam (1.5 M values) and a 2.4 M-value ApplyMomentum, 1 thread:
# 16K blocks are slower than whole arrays (per-call overhead), 64K / 256K the fastest.
ADAM_BLOCK = 1 << 16
MOMENTUM_BLOCK = 1 << 18


def _blocked(update, arrays: list[np.ndarray], scratch: np.ndarray | None, block: int,
             *scalars) -> None:
    """``update(*arrays, tmp, *scalars)`` on consecutive blocks of at most ``block`` elements
    of the same-sized ``arrays`` (the first is the parameter), ``tmp`` cut from ``scratch``
    (a planned workspace, flat; None: a fresh one). One block, or a non-contiguous array:
    one call on the whole arrays shaped like the parameter, with no more Python than the
    unblocked kernels had (W1's fused Adam is one 2410-value call of ~9 us)."""
    p = arrays[0]
    size, shape = p.size, p.shape
    if size <= block or not all(a.flags.c_contiguous for a in arrays):
        if scratch is None or scratch.size < size:
            tmp = np.empty_like(p)
        else:
            tmp = scratch if scratch.shape == shape else scratch[:size].reshape(shape)
        update(*[a if a.shape == shape else _like(a, shape) for a in arrays], tmp, *scalars)
        return
    flat = [a.reshape(-1) for a in arrays]
    tmp = np.empty(block, p.dtype) if scratch is None else scratch.reshape(-1)
    n = -(-size // block)
    step = -(-size // n)  # equal blocks: no short tail block of a few values
    for lo in range(0, size, step):
        hi = min(lo + step, size)
        update(*[f[lo:hi] for f in flat], tmp[:hi - lo], *scalars)


def _adam_moments(m, v, g, tmp, c1, c2):
    """m += (g - m) * c1; v += (g*g - v) * c2 (c = 1 - beta), in place, through ``tmp``."""
    np.subtract(g, m, out=tmp)
    tmp *= c1
    m += tmp
    np.multiply(g, g, out=tmp)
    tmp -= v
    tmp *= c2
    v += tmp


def _adam_update(p, m, v, g, tmp, c1, c2, eps, lr_t, b1, nesterov):
    """nnacl's DoAdam on one block: m += (g - m) * (1 - b1); v += (g*g - v) * (1 - b2);
    p -= lr_t * num / (sqrt(v) + eps), num = m (nesterov: m*b1 + (1 - b1)*g)."""
    _adam_moments(m, v, g, tmp, c1, c2)
    if nesterov:
        num = np.multiply(m, b1)
        num += c1 * g
    else:
        num = m
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(num, tmp, out=tmp)
    tmp *= lr_t
    p -= tmp


def _momentum_update(p, accum, g, step, lr, mom, nesterov):
    """accum = mom*accum + g; p -= lr*accum (nesterov: p -= lr*(g + mom*accum))."""
    accum *= mom
    accum += g
    if nesterov:
        np.multiply(accum, mom, out=step)
        step += g
        step *= lr
    else:
        np.multiply(accum, lr, out=step)
    p -= step


def _sgd_update(p, g, step, lr):
    """p -= lr * g (SGD without momentum or weight decay)."""
    np.multiply(g, lr, out=step)
    p -= step


def _adam_weight_decay_update(p, m, v, g, tmp, c1, c2, eps, lr, decay):
    """The moments as Adam's; p -= lr * (m / (sqrt(v) + eps) + decay*p)."""
    _adam_moments(m, v, g, tmp, c1, c2)
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp += decay * p
    tmp *= lr
    p -= tmp


@op
class Adam(OpDef):
    """Inputs: param, m, v, beta1_power, beta2_power, lr, beta1, beta2, eps, grad; the powers
    are the already advanced b1^t, b2^t."""

    attrs = {"use_locking": False, "use_nesterov": False}
    mutates = (0, 1, 2)
    side_effect = True

    def infer(ins, a):
        if len(ins) != 10:
            raise ValueError(f"Adam takes 10 inputs, got {len(ins)}")
        p, m, v, b1p, b2p, lr, b1, b2, eps, g = ins
        _check_like(p, {"m": m, "v": v, "grad": g})
        _check_scalars(p, {"beta1_power": b1p, "beta2_power": b2p, "lr": lr, "beta1": b1,
                           "beta2": b2, "eps": eps})
        return [_DUMMY]

    def kernel(ins, outs, a, rt):
        p, m, v, b1p, b2p, lr, b1, b2, eps, g = ins
        st = p.dtype.type  # scalars in the param's dtype, read with item() (the cheap way)
        one = st(1)
        b1p, b2p, lr = st(b1p.item(0)), st(b2p.item(0)), st(lr.item(0))
        b1, b2, eps = st(b1.item(0)), st(b2.item(0)), st(eps.item(0))
        if one - b1p <= 0 or one - b2p < 0:
            raise ValueError(f"beta powers must be below 1, got {b1p}, {b2p}")
        lr_t = lr * np.sqrt(one - b2p) / (one - b1p)
        # Scratch: the runtime's planned workspace (one block), else a fresh array.
        _blocked(_adam_update, [p, m, v, g], outs[1] if len(outs) > 1 else None, ADAM_BLOCK,
                 one - b1, one - b2, eps, lr_t, b1, a["use_nesterov"])
        outs[0].fill(0)

    def workspace(ins, a):
        return [TensorType((min(ins[0].size, ADAM_BLOCK),), ins[0].dtype)]


def planned_adam(ins, outs):
    """One Adam call on a parameter of at most one block (a fused group of small ones,
    runtime/fuse.py) with what the kernel derives per call derived once: a function of no
    arguments making the kernel's NumPy calls on the same arrays with the same scalars
    (same bits), or None where the kernel's own call is needed (larger, non-contiguous or
    reshaped operands, no planned scratch). The dummy output ``outs[0]`` is not written
    (the caller zeroes the outputs anything reads). W1: 9.5 -> 7.0 us a call."""
    p, m, v, b1p, b2p, lr, b1, b2, eps, g = ins
    arrays = (p, m, v, g)
    if (p.size > ADAM_BLOCK or len(outs) < 2 or outs[1].size < p.size
            or any(x.shape != p.shape or not x.flags.c_contiguous for x in arrays)
            or outs[1].dtype != p.dtype):
        return None
    tmp = outs[1].reshape(-1)[:p.size].reshape(p.shape)
    scalars = [x.reshape(-1) for x in (b1p, b2p, lr, b1, b2, eps)]
    if not all(np.shares_memory(f, x) for f, x in zip(scalars, (b1p, b2p, lr, b1, b2, eps))):
        return None
    b1p, b2p, lr, b1, b2, eps = scalars
    st = p.dtype.type
    one = st(1)
    subtract, multiply, add, sqrt, divide = (np.subtract, np.multiply, np.add, np.sqrt,
                                             np.divide)

    def run():
        pb1, pb2 = b1p[0], b2p[0]
        if one - pb1 <= 0 or one - pb2 < 0:
            raise ValueError(f"beta powers must be below 1, got {pb1}, {pb2}")
        lr_t = lr[0] * np.sqrt(one - pb2) / (one - pb1)
        c1, c2 = one - b1[0], one - b2[0]
        subtract(g, m, out=tmp)  # _adam_moments and _adam_update, call for call
        multiply(tmp, c1, out=tmp)
        add(m, tmp, out=m)
        multiply(g, g, out=tmp)
        subtract(tmp, v, out=tmp)
        multiply(tmp, c2, out=tmp)
        add(v, tmp, out=v)
        sqrt(v, out=tmp)
        add(tmp, eps[0], out=tmp)
        divide(m, tmp, out=tmp)
        multiply(tmp, lr_t, out=tmp)
        subtract(p, tmp, out=p)
    return run


def planned_sgd(ins, outs, a):
    """``planned_adam`` for SGD without weight decay (W4, W5, W7's heads): p -= lr * g in
    the kernel's two calls; a call finding the momentum set above 0 since runs the kernel.
    None where the kernel's own call is needed."""
    p, g, lr, _, mom, _ = ins
    if (a["weight_decay"] > 0 or p.size > MOMENTUM_BLOCK or len(outs) < 2
            or outs[1].size < p.size or outs[1].dtype != p.dtype
            or any(x.shape != p.shape or not x.flags.c_contiguous for x in (p, g))):
        return None
    tmp = outs[1].reshape(-1)[:p.size].reshape(p.shape)
    lr_, mom_ = lr.reshape(-1), mom.reshape(-1)
    if not (np.shares_memory(lr_, lr) and np.shares_memory(mom_, mom)) or mom_[0] > 0:
        return None
    kernel, multiply, subtract = SGD.kernel, np.multiply, np.subtract

    def run():
        if mom_[0] > 0:
            kernel(ins, outs, a, None)
            return
        multiply(g, lr_[0], out=tmp)  # _sgd_update
        subtract(p, tmp, out=p)
    return run


def planned_momentum(ins, outs, a):
    """``planned_adam`` for ApplyMomentum (W2's small parameters): the kernel's calls on
    views bound once. None where the kernel's own call is needed."""
    p, accum, lr, g, mom = ins
    if (p.size > MOMENTUM_BLOCK or len(outs) < 2 or outs[1].size < p.size
            or outs[1].dtype != p.dtype
            or any(x.shape != p.shape or not x.flags.c_contiguous for x in (p, accum, g))):
        return None
    step = outs[1].reshape(-1)[:p.size].reshape(p.shape)
    lr_, mom_ = lr.reshape(-1), mom.reshape(-1)
    if not (np.shares_memory(lr_, lr) and np.shares_memory(mom_, mom)):
        return None
    multiply, add, subtract = np.multiply, np.add, np.subtract
    if a["use_nesterov"]:
        def run():
            m = mom_[0]
            multiply(accum, m, out=accum)  # _momentum_update, call for call
            add(accum, g, out=accum)
            multiply(accum, m, out=step)
            add(step, g, out=step)
            multiply(step, lr_[0], out=step)
            subtract(p, step, out=p)
        return run

    def run():
        multiply(accum, mom_[0], out=accum)
        add(accum, g, out=accum)
        multiply(accum, lr_[0], out=step)
        subtract(p, step, out=p)
    return run


@op
class ApplyMomentum(OpDef):
    """Inputs: param, accum, lr, grad, momentum. ``gradient_scale`` is carried but, as in
    MindSpore's CPU and Lite kernels, not applied."""

    attrs = {"use_nesterov": False, "use_locking": False, "gradient_scale": 1.0}
    mutates = (0, 1)
    side_effect = True

    def infer(ins, a):
        if len(ins) != 5:
            raise ValueError(f"ApplyMomentum takes 5 inputs, got {len(ins)}")
        p, accum, lr, g, mom = ins
        _check_like(p, {"accum": accum, "grad": g})
        _check_scalars(p, {"lr": lr, "momentum": mom})
        return [_DUMMY]

    def kernel(ins, outs, a, rt):
        p, accum, lr, g, mom = ins
        lr, mom = _scalar(lr, p.dtype), _scalar(mom, p.dtype)
        # The step in the planned workspace (else a fresh array): no temporary per call.
        _blocked(_momentum_update, [p, accum, g], outs[1] if len(outs) > 1 else None,
                 MOMENTUM_BLOCK, lr, mom, a["use_nesterov"])
        outs[0].fill(0)

    def workspace(ins, a):
        return [TensorType((min(ins[0].size, MOMENTUM_BLOCK),), ins[0].dtype)]


@op
class SGD(OpDef):
    """Inputs: param, grad, lr, accum, momentum, stat. ``stat`` (ones at the start, shaped
    like param or a single value) flags the first step. As MindSpore's CPU kernel: with
    momentum 0 the accumulator is left alone and the step is plain ``lr * g``."""

    attrs = {"dampening": 0.0, "weight_decay": 0.0, "nesterov": False}
    mutates = (0, 3, 5)
    side_effect = True

    def infer(ins, a):
        if len(ins) != 6:
            raise ValueError(f"SGD takes 6 inputs, got {len(ins)}")
        p, g, lr, accum, mom, stat = ins
        _check_like(p, {"grad": g, "accum": accum})
        _check_scalars(p, {"lr": lr, "momentum": mom})
        if stat.shape != p.shape and stat.size != 1:
            raise ValueError(f"stat must be shaped like param or hold one value, got {stat}")
        return [_DUMMY]

    def kernel(ins, outs, a, rt):
        p, g, lr, accum, mom, stat = ins
        dt = p.dtype
        lr, mom = _scalar(lr, dt), _scalar(mom, dt)
        wd = dt.type(a["weight_decay"])
        if not mom > 0 and not wd > 0:  # the plain step, through the planned workspace
            _blocked(_sgd_update, [p, g], outs[1] if len(outs) > 1 else None,
                     MOMENTUM_BLOCK, lr)
            outs[0].fill(0)
            return
        g, accum = _like(g, p.shape), _like(accum, p.shape)
        if stat.size == p.size:
            stat = _like(stat, p.shape)
        one = dt.type(1)
        damp = dt.type(a["dampening"])
        step = np.array(g)
        if wd > 0:
            step += wd * p
        if mom > 0:
            first = stat > 0
            # accum = step on the first step, else momentum*accum + (1 - dampening)*step.
            accum *= mom
            accum += (one - damp) * step
            np.copyto(accum, np.broadcast_to(step, accum.shape), where=first)
            stat[...] = 0
            if a["nesterov"]:
                step += mom * accum
            else:
                np.copyto(step, accum)
        step *= lr
        p -= step
        outs[0].fill(0)

    def workspace(ins, a):
        return [TensorType((min(ins[0].size, MOMENTUM_BLOCK),), ins[0].dtype)]


def _assign_infer(ins, a):
    ref, value = ins
    if value.dtype != ref.dtype:
        raise ValueError(f"value dtype {value.dtype.name} differs from ref {ref.dtype.name}")
    # MindSpore Lite copies bytes: the Adam graph assigns a [1] power into a scalar.
    try:
        fits = value.size == ref.size or np.broadcast_shapes(ref.shape, value.shape) == ref.shape
    except ValueError:
        fits = False
    if not fits:
        raise ValueError(f"value {list(value.shape)} does not fit ref {list(ref.shape)}")
    return [ref]


@op
class Assign(OpDef):
    """ref = value; the output is a copy of the new value."""

    mutates = (0,)
    side_effect = True
    infer = _assign_infer

    def kernel(ins, outs, a, rt):
        ref, value = ins
        np.copyto(ref, value.reshape(ref.shape) if value.size == ref.size else value)
        np.copyto(outs[0], ref)


@op
class AssignAdd(OpDef):
    """ref += value; the output is a copy of the new value."""

    mutates = (0,)
    side_effect = True
    infer = _assign_infer

    def kernel(ins, outs, a, rt):
        ref, value = ins
        ref += value.reshape(ref.shape) if value.size == ref.size else value
        np.copyto(outs[0], ref)


@op
class AdamWeightDecay(OpDef):
    """Inputs: param, m, v, lr, beta1, beta2, eps, decay, grad (MindSpore 2.10's nn.
    AdamWeightDecay exports this primitive: tests/fixtures/mindir_forms/adam_weight_decay.mindir).
    No bias correction: ``p -= lr * (m / (sqrt(v) + eps) + decay * p)``, as MindSpore's CPU
    kernel and Lite 2.7's AdamWeightDecay kernel compute it."""

    attrs = {"use_locking": False}
    mutates = (0, 1, 2)
    side_effect = True

    def infer(ins, a):
        if len(ins) != 9:
            raise ValueError(f"AdamWeightDecay takes 9 inputs, got {len(ins)}")
        p, m, v, lr, b1, b2, eps, decay, g = ins
        _check_like(p, {"m": m, "v": v, "grad": g})
        _check_scalars(p, {"lr": lr, "beta1": b1, "beta2": b2, "eps": eps, "decay": decay})
        return [_DUMMY]

    def kernel(ins, outs, a, rt):
        p, m, v, lr, b1, b2, eps, decay, g = ins
        dt = p.dtype
        one = dt.type(1)
        lr, b1, b2, eps, decay = (_scalar(s, dt) for s in (lr, b1, b2, eps, decay))
        _blocked(_adam_weight_decay_update, [p, m, v, g], outs[1] if len(outs) > 1 else None,
                 ADAM_BLOCK, one - b1, one - b2, eps, lr, decay)
        outs[0].fill(0)
