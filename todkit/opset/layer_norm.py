"""Layer normalisation: LayerNorm (y, mean, variance) and LayerNormGrad, with the semantics
of MindSpore 2.10's CPU kernels (checked against 2.10 in GRAPH_MODE, tests/test_layer_norm.py
and tests/fixtures/reference/layernorm_adam).

- ``begin_norm_axis`` (b): x is normalised over its axes b.. (negative counts from the end);
  mean and variance are the per-row statistics over those axes, the variance *biased* (divided
  by the count), and both are outputs of x.shape[:b] + (1,) * (rank - b): MindSpore keeps the
  normalised axes as ones (MindSpore Lite's infer drops them; the IR keeps MindSpore's).
- ``begin_params_axis`` (p): gamma and beta have shape x.shape[p:] and broadcast against x.
  p need not equal b (both orders are MindSpore's).
- y = (x - mean) / sqrt(variance + epsilon) * gamma + beta. Output 2 is the variance, not
  its reciprocal square root.

LayerNormGrad takes MindSpore's bprop inputs (x, dy, variance, mean, gamma) and gives
(dx, dgamma, dbeta); MindSpore Lite's kernel takes the same order. 2.10's bprop puts the
forward's ``epsilon`` on the gradient primitive as an attribute and its CPU kernel uses it
(1e-7 when absent); Lite's LayerNormGrad table has no epsilon (its nnacl kernel fixes 1e-12),
so the ``.ms`` reader takes it from the LayerNorm that produced the variance.
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op

LN_DEFAULTS = {"begin_norm_axis": 1, "begin_params_axis": 1, "epsilon": 1e-7}


def _axis(v, rank: int, name: str) -> int:
    v = int(v)
    if not -rank <= v < rank:
        raise ValueError(f"{name} {v} is out of range for a rank-{rank} input")
    return v % rank


def _geometry(shape, a) -> tuple[int, int, tuple[int, ...], tuple[int, ...]]:
    """(rows, row length, statistics shape, parameter shape) of an input of ``shape``."""
    rank = len(shape)
    if rank < 1:
        raise ValueError("needs an input of rank >= 1")
    b = _axis(a["begin_norm_axis"], rank, "begin_norm_axis")
    p = _axis(a["begin_params_axis"], rank, "begin_params_axis")
    inner = int(np.prod(shape[b:], dtype=np.int64))
    rows = int(np.prod(shape[:b], dtype=np.int64))
    return rows, inner, tuple(shape[:b]) + (1,) * (rank - b), tuple(shape[p:])


def _check_param(x: TensorType, v: TensorType, name: str, pshape) -> None:
    if v.shape != pshape:
        raise ValueError(f"{name} {list(v.shape)} must be x's trailing shape {list(pshape)}")
    if v.dtype != x.dtype:
        raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")


def _check_stat(x: TensorType, v: TensorType, name: str, rows: int) -> None:
    # The statistics may come as MindSpore's kept-dims shape or Lite's x.shape[:b].
    if v.size != rows:
        raise ValueError(f"{name} {list(v.shape)} must hold one value per row ({rows})")
    if v.dtype != x.dtype:
        raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")


def layer_norm(ins, outs, a) -> None:
    """y, mean, variance into ``outs``. Only row-sized temporaries: y's buffer holds x - mean
    while the variance is summed from it (``y`` may be ``x`` itself)."""
    x, gamma, beta = ins
    y, mean, var = outs[:3]
    rows, inner, _, _ = _geometry(x.shape, a)
    x2, y2 = x.reshape(rows, inner), y.reshape(rows, inner)
    m, v = mean.reshape(rows, 1), var.reshape(rows, 1)
    np.add.reduce(x2, axis=1, keepdims=True, out=m)
    m /= inner
    np.subtract(x2, m, out=y2)
    np.einsum("ij,ij->i", y2, y2, out=v.reshape(rows))
    v /= inner
    rstd = np.sqrt(v + x.dtype.type(a["epsilon"]))
    np.divide(1, rstd, out=rstd)
    y2 *= rstd
    y *= gamma  # gamma, beta: x.shape[p:], broadcast over the leading axes
    y += beta


def _grad_scratch(outs, x) -> np.ndarray:
    """The planned workspace (x's shape) after the three outputs, else a fresh array (a
    kernel called with its outputs only: the front end's eager path)."""
    if len(outs) > 3 and outs[3].size == x.size:
        return outs[3].reshape(x.shape)
    return np.empty_like(x)


def layer_norm_grad(ins, outs, a) -> None:
    """dx, dgamma, dbeta. With x_hat = (x - mean) * rstd and g = dy * gamma, per row:
    dx = rstd * (g - mean(g) - (x_hat - mean(x_hat)) * mean(g * x_hat)), the derivative
    through the row's mean and variance that MindSpore's kernel computes (its sum3 term is
    mean(x_hat), 0 up to rounding when mean is x's); dgamma = sum(dy * x_hat) and dbeta =
    sum(dy) over the leading axes [0, begin_params_axis). dx's buffer holds x_hat until it
    is overwritten; one x-sized workspace holds dy * x_hat, then g."""
    x, dy, var, mean, gamma = ins
    dx, dgamma, dbeta = outs[:3]
    rows, inner, _, pshape = _geometry(x.shape, a)
    psize = max(int(np.prod(pshape, dtype=np.int64)), 1)
    work = _grad_scratch(outs, x)
    x2, dx2, w2 = x.reshape(rows, inner), dx.reshape(rows, inner), work.reshape(rows, inner)
    m = mean.reshape(rows, 1)
    rstd = np.sqrt(var.reshape(rows, 1) + x.dtype.type(a["epsilon"]))
    np.divide(1, rstd, out=rstd)
    np.subtract(x2, m, out=dx2)
    dx2 *= rstd  # x_hat
    np.multiply(dy, dx, out=work)
    np.add.reduce(work.reshape(-1, psize), axis=0, out=dgamma.reshape(psize))
    np.add.reduce(dy.reshape(-1, psize), axis=0, out=dbeta.reshape(psize))
    np.multiply(dy, gamma, out=work)  # g
    g_mean = np.add.reduce(w2, axis=1, keepdims=True)
    g_mean /= inner
    gx_mean = np.einsum("ij,ij->i", w2, dx2).reshape(rows, 1)
    gx_mean /= inner
    x_mean = np.add.reduce(dx2, axis=1, keepdims=True)
    x_mean /= inner
    dx2 -= x_mean
    dx2 *= gx_mean
    np.subtract(w2, dx2, out=dx2)
    dx2 -= g_mean
    dx2 *= rstd


@op
class LayerNorm(OpDef):
    """(x, gamma, beta) -> (y, mean, variance); mean and variance keep the normalised axes
    as ones."""

    attrs = dict(LN_DEFAULTS)
    inplace = {0: 0}

    def infer(ins, a):
        x, gamma, beta = ins
        if x.dtype.np.kind != "f":
            raise ValueError(f"needs a float input, got {x.dtype.name}")
        _, _, sshape, pshape = _geometry(x.shape, a)
        _check_param(x, gamma, "gamma", pshape)
        _check_param(x, beta, "beta", pshape)
        stat = TensorType(sshape, x.dtype)
        return [x, stat, stat]

    def kernel(ins, outs, a, rt):
        layer_norm(ins, outs, a)

    def grad(g, node, douts):
        # MindSpore's bprop: LayerNormGrad(x, dout[0], variance, mean, gamma) with the
        # forward's axes and epsilon; the gradients of mean and variance are not propagated.
        x, gamma, beta = node.inputs
        dy = douts[0]
        if dy is None or not any(g.wants(v) for v in (x, gamma, beta)):
            return [None, None, None]
        a = node.attrs
        dx, dgamma, dbeta = g.emit(
            "LayerNormGrad", [x, dy, node.outputs[2], node.outputs[1], gamma],
            begin_norm_axis=a["begin_norm_axis"], begin_params_axis=a["begin_params_axis"],
            epsilon=a["epsilon"])
        return [dx if g.wants(x) else None, dgamma if g.wants(gamma) else None,
                dbeta if g.wants(beta) else None]


@op
class LayerNormGrad(OpDef):
    """(x, dy, variance, mean, gamma) -> (dx, dgamma, dbeta)."""

    attrs = dict(LN_DEFAULTS)

    def infer(ins, a):
        x, dy, var, mean, gamma = ins
        if dy != x:
            raise ValueError(f"dy {dy} must match x {x}")
        rows, _, _, pshape = _geometry(x.shape, a)
        _check_stat(x, var, "variance", rows)
        _check_stat(x, mean, "mean", rows)
        _check_param(x, gamma, "gamma", pshape)
        return [x, gamma, gamma]

    def workspace(ins, a):
        return [ins[0]]  # dy * x_hat, then dy * gamma

    def kernel(ins, outs, a, rt):
        layer_norm_grad(ins, outs, a)
