"""Shape rules that many element-wise ops share."""

from __future__ import annotations


def float_like(ins, a):
    """One float input; the output has its type (activations, Sqrt, Exp, ...)."""
    (x,) = ins
    if x.dtype.np.kind != "f":
        raise ValueError(f"needs a float input, got {x.dtype.name}")
    return [x]


def pair_of_same(ins, a):
    """Two inputs of one type, one output of that type (the *Grad ops of activations)."""
    p, q = ins
    if p != q:
        raise ValueError(f"inputs differ: {p} vs {q}")
    return [p]
