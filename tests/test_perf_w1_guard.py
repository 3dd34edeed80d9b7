"""The non-finite guard's cheap checks (issue 6, W1/W7): a single value read as a float, a
small tensor by ``isfinite`` into a kept mask, a large contiguous float tensor dotted with
zeros, anything else summed. Every NaN or Inf position
must be found (BLAS kernels split vectors into blocks and tails), finite tensors whose sum
overflows must pass, and no NumPy warning may leak from a check."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.ir.graph import TensorType, Value
from todkit.runtime.guard import Guard


def _value(name, arr):
    return Value(name, TensorType(arr.shape, dtypes.from_numpy(arr.dtype)))


def _guard(*arrays):
    return Guard("skip", [(_value(f"t{k}", a), a) for k, a in enumerate(arrays)])


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
@pytest.mark.parametrize("size", [1, 2, 7, 31, 2410, 12810, 40000, 70001])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_every_position_is_found(dtype, size, bad):
    rng = np.random.default_rng(size)
    arr = rng.standard_normal(size).astype(dtype)
    loss = np.array(1.5, dtype)
    g = _guard(loss, arr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g.bad_tensor() is None
        for pos in sorted({0, size // 2, size - 1, max(0, size - 5)}):
            arr[pos] = bad
            assert g.bad_tensor() is g.watched[1][0], pos
            arr[pos] = 0
        loss[...] = bad
        assert g.bad_tensor() is g.watched[0][0]


@pytest.mark.parametrize("size", [5000, 50000])
def test_finite_values_whose_sum_overflows_pass(size):
    big = np.full(size, 3e38, np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _guard(big, big.reshape(50, -1)).bad_tensor() is None


@pytest.mark.parametrize("rows", [40, 4000])
def test_strided_tensor_is_checked(rows):
    arr = np.zeros((rows, 30), np.float32)[:, ::3]
    g = _guard(arr)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g.bad_tensor() is None
        arr[7, 2] = np.nan
        assert g.bad_tensor() is g.watched[0][0]
        arr[7, 2] = 3e38  # the sum overflows: confirmed finite by the slow check
        arr[8, 2] = 3e38
        assert g.bad_tensor() is None


def test_group_member_is_named():
    flat = np.zeros(100, np.float32)
    members = [_value("w", np.zeros(60, np.float32)), _value("b", np.zeros(40, np.float32))]
    g = Guard("skip", [(members, flat)])
    flat[75] = np.inf
    assert g.bad_tensor() is members[1]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_two_parts_report_the_first_bad_tensor_in_order(bad):
    """At two threads large sets are checked as two parts at once (W6's 43 MB of
    gradients): the tensor reported is the one the one-by-one order finds first, and the
    worker's inf * 0 leaks no warning."""
    from todkit.runtime.workers import Parallel

    rng = np.random.default_rng(0)
    arrays = [rng.standard_normal(n).astype(np.float32) for n in (1 << 21, 3, 1 << 21, 1 << 22)]
    g = Guard("skip", [(_value(f"t{k}", a), a) for k, a in enumerate(arrays)], Parallel(2))
    # the third array straddles the middle by its last three values: cut there
    assert g._par is not None and [[k for k, _ in p] for p in g._parts] == [[0, 1, 2], [2, 3]]
    names = [v for v, _ in g.watched]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert g.bad_tensor() is None
        arrays[3][-1] = bad  # second part only
        assert g.bad_tensor() is names[3]
        arrays[1][0] = bad  # both parts: the first in order
        assert g.bad_tensor() is names[1]
        arrays[1][0] = arrays[3][-1] = 0
        assert g.bad_tensor() is None
    small = Guard("skip", [(names[1], arrays[1])], Parallel(2))
    assert small._par is None  # below MIN_SPLIT_BYTES: one by one


def test_one_large_tensor_is_cut_between_the_parts():
    """A 16 MB weight gradient beside a loss: both parts check half of it."""
    from todkit.runtime.workers import Parallel

    big = np.zeros(1 << 22, np.float32)
    g = Guard("skip", [(_value("loss", np.zeros(())), np.zeros((), np.float32)),
                       (_value("dw", big), big.reshape(64, -1))], Parallel(2))
    assert [[k for k, _ in p] for p in g._parts] == [[0, 1], [1]]
    for pos in (0, big.size // 2 - 1, big.size // 2, big.size - 1):
        big[pos] = np.nan
        assert g.bad_tensor() is g.watched[1][0], pos
        big[pos] = 0
    assert g.bad_tensor() is None
