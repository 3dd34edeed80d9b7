"""ReLU over large arrays in rows against a row of zeros (todkit/opset/activation.py):
bit for bit ``np.maximum(x, 0)``, signed zeros, NaN and infinities included, for sizes
below, at and above the row cut with ragged tails, and for strided inputs."""

from __future__ import annotations

import numpy as np
import pytest

from todkit.opset.registry import get_op

RELU = get_op("ReLU").kernel
SPECIAL = [-0.0, 0.0, np.nan, np.inf, -np.inf, 1e-45, -1e-45, 3e38, -3e38, 1.0, -1.0]


@pytest.mark.parametrize("shape", [(7,), (32, 32), (4, 1024), (5, 1000), (32, 24, 24, 6),
                                   (3, 4099)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_relu_is_bit_for_bit_maximum(shape, dtype):
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal(shape).astype(dtype)
    flat = x.reshape(-1)
    with np.errstate(over="ignore"):  # +-3e38 are infinities in float16
        flat[rng.integers(0, flat.size, min(flat.size, 40))] = rng.choice(SPECIAL,
                                                                          min(flat.size, 40))
    out = np.full_like(x, 7)
    RELU([x], [out], {}, None)
    want = np.maximum(x, 0)
    assert np.array_equal(out.view(f"u{x.itemsize}"), want.view(f"u{x.itemsize}"))


def test_strided_input():
    x = np.random.default_rng(0).standard_normal((64, 256)).astype(np.float32)[:, ::2]
    out = np.empty(x.shape, np.float32)
    RELU([x], [out], {}, None)
    np.testing.assert_array_equal(out, np.maximum(x, 0))
