"""Optimizer kernels updating large parameters block by block (todkit/opset/optim.py,
W3's Adam) give bit for bit the whole-array updates: the same element-wise arithmetic in the
same order, whatever the cutting (blocks, a tail, workspaces shorter than the parameter,
moments stored in another shape, a non-contiguous parameter)."""

from __future__ import annotations

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType
from todkit.opset import optim
from todkit.opset.registry import get_op

SHAPES = [(1,), (7,), (5, 9), (64,), (3, 4, 11)]


def _whole_adam(p, m, v, g, b1p, b2p, lr, b1, b2, eps, nesterov):
    """The kernel's arithmetic on whole arrays, as it was before blocking."""
    st = p.dtype.type
    one = st(1)
    lr_t = lr * np.sqrt(one - b2p) / (one - b1p)
    tmp = np.subtract(g, m)
    tmp *= one - b1
    m += tmp
    np.multiply(g, g, out=tmp)
    tmp -= v
    tmp *= one - b2
    v += tmp
    num = m
    if nesterov:
        num = np.multiply(m, b1)
        num += (one - b1) * g
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(num, tmp, out=tmp)
    tmp *= lr_t
    p -= tmp


def _whole_momentum(p, accum, g, lr, mom, nesterov):
    accum *= mom
    accum += g
    step = np.multiply(accum, mom) + g if nesterov else np.multiply(accum, lr)
    if nesterov:
        step *= lr
    p -= step


def _whole_adam_weight_decay(p, m, v, g, lr, b1, b2, eps, decay):
    one = p.dtype.type(1)
    tmp = np.subtract(g, m)
    tmp *= one - b1
    m += tmp
    np.multiply(g, g, out=tmp)
    tmp -= v
    tmp *= one - b2
    v += tmp
    np.sqrt(v, out=tmp)
    tmp += eps
    np.divide(m, tmp, out=tmp)
    tmp += decay * p
    tmp *= lr
    p -= tmp


def _state(shape, dtype, seed=0):
    rng = np.random.default_rng(seed)
    p, m, g = (rng.normal(size=shape).astype(dtype) for _ in range(3))
    v = np.abs(rng.normal(size=shape)).astype(dtype)
    return p, m, v, g


def _s(x, dtype):
    return np.array([x], dtype)


@pytest.fixture(params=[1, 3, 8, 1 << 16], ids=lambda b: f"block{b}")
def block(request, monkeypatch):
    """Small blocks cut the test arrays into many blocks and a tail."""
    monkeypatch.setattr(optim, "ADAM_BLOCK", request.param)
    monkeypatch.setattr(optim, "MOMENTUM_BLOCK", request.param)
    return request.param


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("nesterov", [False, True])
@pytest.mark.parametrize("workspace", [False, True])
def test_adam_blocks_equal_whole_arrays(block, dtype, shape, nesterov, workspace):
    p, m, v, g = _state(shape, dtype)
    want = [a.copy() for a in (p, m, v)]
    scalars = [0.9 ** 3, 0.999 ** 3, 1e-3, 0.9, 0.999, 1e-8]
    _whole_adam(*want, g, *(dtype(s) for s in scalars), nesterov)
    ins = [p, m, v, *(_s(s, dtype) for s in scalars), g]
    outs = [np.ones(1, np.float32)]
    if workspace:  # the planned workspace: one block, as the op declares it
        outs.append(np.full(min(p.size, optim.ADAM_BLOCK), np.nan, dtype))
    get_op("Adam").kernel(ins, outs, {"use_nesterov": nesterov}, None)
    for got, exp in zip((p, m, v), want):
        np.testing.assert_array_equal(got, exp)
    assert outs[0][0] == 0


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("nesterov", [False, True])
def test_momentum_blocks_equal_whole_arrays(block, dtype, shape, nesterov):
    p, accum, _, g = _state(shape, dtype, seed=1)
    want = [p.copy(), accum.copy()]
    _whole_momentum(*want, g, dtype(0.01), dtype(0.9), nesterov)
    outs = [np.ones(1, np.float32), np.empty(min(p.size, optim.MOMENTUM_BLOCK), dtype)]
    get_op("ApplyMomentum").kernel([p, accum, _s(0.01, dtype), g, _s(0.9, dtype)], outs,
                                   {"use_nesterov": nesterov}, None)
    np.testing.assert_array_equal(p, want[0])
    np.testing.assert_array_equal(accum, want[1])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("workspace", [False, True])
def test_plain_sgd_blocks_equal_whole_arrays(block, dtype, shape, workspace):
    """SGD without momentum or weight decay (W4, W5, W7): p -= lr * g through the planned
    workspace (no array of the parameter's size per call); accum and stat stay as they
    are, as in MindSpore's CPU kernel."""
    p, accum, stat, g = _state(shape, dtype, seed=5)
    want = p - g * dtype(0.05)
    before = accum.copy(), stat.copy()
    outs = [np.ones(1, np.float32)]
    if workspace:
        outs.append(np.full(get_op("SGD").workspace(
            [TensorType(shape, dtypes.from_numpy(np.dtype(dtype)))], {})[0].shape, np.nan,
            dtype))
    get_op("SGD").kernel([p, g, _s(0.05, dtype), accum, _s(0.0, dtype), stat], outs,
                         {"weight_decay": 0.0, "dampening": 0.0, "nesterov": False}, None)
    np.testing.assert_array_equal(p, want)
    np.testing.assert_array_equal(accum, before[0])
    np.testing.assert_array_equal(stat, before[1])
    assert outs[0][0] == 0


@pytest.mark.parametrize("shape", SHAPES)
def test_adam_weight_decay_blocks_equal_whole_arrays(block, shape):
    p, m, v, g = _state(shape, np.float32, seed=2)
    want = [a.copy() for a in (p, m, v)]
    scalars = [1e-3, 0.9, 0.999, 1e-8, 0.01]
    _whole_adam_weight_decay(*want, g, *(np.float32(s) for s in scalars))
    get_op("AdamWeightDecay").kernel([p, m, v, *(_s(s, np.float32) for s in scalars), g],
                                     [np.ones(1, np.float32)], {}, None)
    for got, exp in zip((p, m, v), want):
        np.testing.assert_array_equal(got, exp)


def test_moments_in_another_shape_and_a_non_contiguous_param(block):
    """The converter keeps Adam moments of an NHWC weight in NCHW shape (equal size); a
    strided parameter is updated whole (in place, through its view)."""
    p, _, _, g = _state((4, 6), np.float32)
    _, m, v, _ = _state((6, 4), np.float32, seed=3)
    scalars = [0.9, 0.999, 1e-3, 0.9, 0.999, 1e-8]
    want = [p.copy(), m.copy().reshape(4, 6), v.copy().reshape(4, 6)]
    _whole_adam(*want, g, *(np.float32(s) for s in scalars), False)
    outs = [np.ones(1, np.float32), np.empty(min(24, optim.ADAM_BLOCK), np.float32)]
    get_op("Adam").kernel([p, m, v, *(_s(s, np.float32) for s in scalars), g], outs,
                          {"use_nesterov": False}, None)
    np.testing.assert_array_equal(p, want[0])
    np.testing.assert_array_equal(m.reshape(4, 6), want[1])
    base = _state((4, 12), np.float32, seed=4)[0]
    strided = base[:, ::2]
    want_p = strided.copy()
    acc, acc_want = np.zeros((4, 6), np.float32), np.zeros((4, 6), np.float32)
    _whole_momentum(want_p, acc_want, g, np.float32(0.1), np.float32(0.9), False)
    get_op("ApplyMomentum").kernel([strided, acc, _s(0.1, np.float32), g, _s(0.9, np.float32)],
                                   [np.ones(1, np.float32), np.empty(2, np.float32)],
                                   {"use_nesterov": False}, None)
    np.testing.assert_array_equal(base[:, ::2], want_p)  # landed in the parameter's bytes
    np.testing.assert_array_equal(acc, acc_want)


def test_workspaces_are_one_block():
    big, small = 3 * optim.ADAM_BLOCK + 5, 10

    def ws(op, n):
        return get_op(op).workspace([TensorType((n,), dtypes.float32)], {})[0].shape

    assert ws("Adam", big) == (optim.ADAM_BLOCK,) and ws("Adam", small) == (small,)
    assert ws("ApplyMomentum", 5 * optim.MOMENTUM_BLOCK) == (optim.MOMENTUM_BLOCK,)
    assert ws("SGD", 5 * optim.MOMENTUM_BLOCK) == (optim.MOMENTUM_BLOCK,)


def test_planned_adam_makes_the_kernels_calls_bit_for_bit():
    """optim.planned_adam (a fused group's call, W1): the kernel's arithmetic with the scalars
    read at each call (a new lr, advanced beta powers), the same bits; None where it
    cannot bind views (larger than a block, a reshaped moment, no scratch)."""
    shape = (5, 9)
    p, m, v, g = _state(shape, np.float32, seed=6)
    ins = [p, m, v, *(_s(x, np.float32) for x in (0.9, 0.999, 1e-3, 0.9, 0.999, 1e-8)), g]
    twin = [a.copy() for a in ins]
    run = optim.planned_adam(ins, [np.ones(1, np.float32), np.empty(45, np.float32)])
    for step in range(3):
        ins[3] *= np.float32(0.9)  # as the graph advances the powers between steps
        ins[4] *= np.float32(0.999)
        ins[5][0] = twin[5][0] = np.float32(1e-3 / (step + 1))
        twin[3][...], twin[4][...] = ins[3], ins[4]
        run()
        get_op("Adam").kernel(twin, [np.ones(1, np.float32), np.empty(45, np.float32)],
                              {"use_nesterov": False}, None)
        for got, want in zip(ins[:3], twin[:3]):
            np.testing.assert_array_equal(got, want)
    ins[3][0] = 1.0
    with pytest.raises(ValueError, match="beta powers"):
        run()
    scratch = [np.ones(1, np.float32), np.empty(45, np.float32)]
    assert optim.planned_adam([p, m.reshape(9, 5), *ins[2:]], scratch) is None
    assert optim.planned_adam(ins, scratch[:1]) is None
    big = np.zeros(optim.ADAM_BLOCK + 1, np.float32)
    assert optim.planned_adam([big, big.copy(), big.copy(), *ins[3:9], big.copy()],
                              [scratch[0], big.copy()]) is None


def test_planned_sgd_is_the_plain_step_and_the_kernel_once_momentum_is_set():
    p, accum, stat, g = _state((4, 6), np.float32, seed=7)
    attrs = {"weight_decay": 0.0, "dampening": 0.0, "nesterov": False}
    ins = [p, g, _s(0.05, np.float32), accum, _s(0.0, np.float32), stat]
    twin = [a.copy() for a in ins]
    outs = [np.ones(1, np.float32), np.empty(24, np.float32)]
    run = optim.planned_sgd(ins, outs, attrs)
    for momentum in (0.0, 0.0, 0.9, 0.9):  # update_weights may set the momentum later
        ins[4][0] = twin[4][0] = momentum
        ins[2][0] = twin[2][0] = np.float32(0.05 + momentum)
        run()
        get_op("SGD").kernel(twin, [np.ones(1, np.float32), np.empty(24, np.float32)], attrs,
                             None)
        for got, want in zip(ins, twin):
            np.testing.assert_array_equal(got, want)
    assert optim.planned_sgd(ins, outs, attrs) is None  # momentum above 0 at build
    ins[4][0] = 0
    assert optim.planned_sgd(ins, outs, {**attrs, "weight_decay": 0.01}) is None
    assert optim.planned_sgd(ins, outs[:1], attrs) is None


@pytest.mark.parametrize("nesterov", [False, True])
def test_planned_momentum_makes_the_kernels_calls_bit_for_bit(nesterov):
    p, accum, _, g = _state((3, 7), np.float32, seed=8)
    ins = [p, accum, _s(0.01, np.float32), g, _s(0.9, np.float32)]
    twin = [a.copy() for a in ins]
    run = optim.planned_momentum(ins, [np.ones(1, np.float32), np.empty(21, np.float32)],
                                 {"use_nesterov": nesterov})
    for lr in (0.01, 0.02, 0.005):  # a new lr is read by the next call
        ins[2][0] = twin[2][0] = lr
        run()
        get_op("ApplyMomentum").kernel(twin, [np.ones(1, np.float32), np.empty(21, np.float32)],
                                       {"use_nesterov": nesterov}, None)
        for got, want in zip(ins[:2], twin[:2]):
            np.testing.assert_array_equal(got, want)
    assert optim.planned_momentum([p, accum.reshape(7, 3), *ins[2:]],
                                  [np.ones(1, np.float32), np.empty(21, np.float32)],
                                  {"use_nesterov": nesterov}) is None
