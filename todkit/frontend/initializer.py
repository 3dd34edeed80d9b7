"""Weight initializers with MindSpore's names and defaults, and ``set_seed``.

Draws come from one NumPy generator. ``set_seed(s)`` makes todkit's weights reproducible for a
given seed, but they cannot equal MindSpore's for the same seed: MindSpore uses its own
generators (Philox / MT on the C++ side), so only the distributions match.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from todkit.core import dtypes

_rng = np.random.default_rng()


def set_seed(seed: int) -> None:
    """Reseed the generator every initializer draws from (NumPy's, not MindSpore's RNG: the
    weights repeat for a seed but differ from MindSpore's for the same seed)."""
    global _rng
    _rng = np.random.default_rng(int(seed))


def get_rng() -> np.random.Generator:
    return _rng


def _fans(shape) -> tuple[int, int]:
    """MindSpore's ``_calculate_fan_in_and_fan_out``: dims 1 and 0 times the receptive field."""
    if len(shape) < 2:
        raise ValueError(f"fan in/out needs at least 2 dimensions, got shape {list(shape)}")
    receptive = int(np.prod(shape[2:])) if len(shape) > 2 else 1
    return int(shape[1]) * receptive, int(shape[0]) * receptive


def _gain(nonlinearity: str, param=None) -> float:
    if nonlinearity in ("linear", "conv1d", "conv2d", "conv3d", "sigmoid"):
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        slope = 0.01 if param is None else float(param)
        return math.sqrt(2.0 / (1 + slope**2))
    raise ValueError(f"unsupported nonlinearity {nonlinearity!r}")


class Initializer:
    """Subclasses implement ``_sample(shape) -> float64 array``."""

    def __call__(self, shape) -> np.ndarray:
        return self._sample(tuple(int(d) for d in shape))

    def _sample(self, shape):
        raise NotImplementedError


class Zero(Initializer):
    def _sample(self, shape):
        return np.zeros(shape)


class One(Initializer):
    def _sample(self, shape):
        return np.ones(shape)


class Constant(Initializer):
    def __init__(self, value):
        self.value = value

    def _sample(self, shape):
        return np.full(shape, self.value)


class Uniform(Initializer):
    """U(-scale, scale)."""

    def __init__(self, scale=0.07):
        self.scale = scale

    def _sample(self, shape):
        return _rng.uniform(-self.scale, self.scale, shape)


class Normal(Initializer):
    def __init__(self, sigma=0.01, mean=0.0):
        self.sigma, self.mean = sigma, mean

    def _sample(self, shape):
        return _rng.normal(self.mean, self.sigma, shape)


class TruncatedNormal(Initializer):
    """N(0, sigma) redrawn outside [-2 sigma, 2 sigma]."""

    def __init__(self, sigma=0.01):
        self.sigma = sigma

    def _sample(self, shape):
        out = _rng.normal(0.0, self.sigma, shape)
        bad = np.abs(out) > 2 * self.sigma
        while bad.any():
            out[bad] = _rng.normal(0.0, self.sigma, int(bad.sum()))
            bad = np.abs(out) > 2 * self.sigma
        return out


class HeUniform(Initializer):
    """U(-b, b), b = gain * sqrt(3 / fan); with MindSpore's layer default
    ``negative_slope=sqrt(5)`` this is b = 1/sqrt(fan_in)."""

    def __init__(self, negative_slope=0, mode="fan_in", nonlinearity="leaky_relu"):
        self.negative_slope, self.mode, self.nonlinearity = negative_slope, mode, nonlinearity

    def _sample(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        bound = math.sqrt(3.0) * _gain(self.nonlinearity, self.negative_slope) / math.sqrt(fan)
        return _rng.uniform(-bound, bound, shape)


class HeNormal(Initializer):
    def __init__(self, negative_slope=0, mode="fan_in", nonlinearity="leaky_relu"):
        self.negative_slope, self.mode, self.nonlinearity = negative_slope, mode, nonlinearity

    def _sample(self, shape):
        fan_in, fan_out = _fans(shape)
        fan = fan_in if self.mode == "fan_in" else fan_out
        std = _gain(self.nonlinearity, self.negative_slope) / math.sqrt(fan)
        return _rng.normal(0.0, std, shape)


class XavierUniform(Initializer):
    def __init__(self, gain=1):
        self.gain = gain

    def _sample(self, shape):
        fan_in, fan_out = _fans(shape)
        bound = self.gain * math.sqrt(6.0 / (fan_in + fan_out))
        return _rng.uniform(-bound, bound, shape)


# MindSpore's string aliases (``initializer('normal', ...)``), lower-cased.
_ALIASES = {
    "zeros": Zero, "zero": Zero, "ones": One, "one": One,
    "uniform": Uniform, "normal": Normal,
    "truncatednormal": TruncatedNormal, "truncated_normal": TruncatedNormal,
    "heuniform": HeUniform, "he_uniform": HeUniform,
    "henormal": HeNormal, "he_normal": HeNormal,
    "xavieruniform": XavierUniform, "xavier_uniform": XavierUniform,
}


def initializer(init, shape=None, dtype=dtypes.float32):
    """A Tensor of ``shape`` filled by ``init``: an Initializer, one of MindSpore's names
    ('zeros', 'ones', 'normal', 'uniform', 'he_uniform', ...), a number, or a Tensor/array
    (whose shape must match)."""
    from todkit.frontend.tensor import Tensor

    dtype = dtypes.as_dtype(dtype)
    shape = () if shape is None else (tuple(shape) if not isinstance(shape, int) else (shape,))
    if isinstance(init, (Tensor, np.ndarray)):
        arr = np.asarray(init)
        if arr.shape != shape and shape != ():
            raise ValueError(f"initializer tensor shape {list(arr.shape)} != {list(shape)}")
        return Tensor(arr, dtype)
    if isinstance(init, numbers.Number):
        init = Constant(init)
    elif isinstance(init, str):
        cls = _ALIASES.get(init.lower())
        if cls is None:
            raise ValueError(f"unknown initializer {init!r}; known: {sorted(_ALIASES)}")
        init = cls()
    elif isinstance(init, type) and issubclass(init, Initializer):
        init = init()
    if not isinstance(init, Initializer):
        raise TypeError(f"unsupported initializer {init!r}")
    return Tensor(np.asarray(init(shape)).astype(dtype.np), dtype)
