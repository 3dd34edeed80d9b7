"""Group normalisation (nn.GroupNorm): GroupNorm (y, mean, rstd) and GroupNormGrad, with the
semantics of MindSpore 2.10's CPU kernels (checked against 2.10 in GRAPH_MODE:
tests/test_group_norm.py and tests/fixtures/reference/groupnorm_momentum).

- x has shape (N, C, *) (any rank >= 2, channels on axis 1); its C channels are split into
  ``num_groups`` (G) consecutive groups of C / G channels, and each (sample, group) block of
  M = (C / G) * prod(*) elements is normalised with its mean and *biased* variance:
  y = (x - mean) * rstd * gamma[c] + beta[c], rstd = 1 / sqrt(variance + epsilon).
- Outputs 1 and 2 are MindSpore's: the mean and rstd (not the variance), both of shape
  (N, G).
- GroupNormGrad(dy, x, mean, rstd, gamma) -> (dx, dgamma, dbeta), MindSpore's bprop form; its
  three ``*_is_require`` flags are kept for the files but change nothing (2.10's CPU kernel
  computes all three outputs whatever they say: checked).

MindSpore Lite has ``GroupNormFusion{num_groups, epsilon, affine}`` (tag 211) for the forward:
its nnacl kernel reads x, gamma, beta in NCHW (it refuses other tensor formats) and writes y
only, keeping the statistics to itself. Lite has no GroupNormGrad kernel. So the converter
writes each GroupNormGrad with ops Lite has (``group_norm_grad_ops``: Reshape, ReduceMean,
ReduceSum, Sub, Mul, Add, Sqrt, RealDiv), and where the statistics are GroupNorm's outputs 1
and 2, which a Lite GroupNormFusion would leave unwritten, it recomputes them from x with the
forward's epsilon. The IR op keeps MindSpore's three outputs, so a 2.10 file reads as is and
todkit's own exports carry MindSpore's GroupNormGrad.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op

GN_FLAGS = ("dx_is_require", "dgamma_is_require", "dbeta_is_require")

# make(op, inputs, suffix, **attrs) -> the Value of a new node's output 0, and
# const(array, suffix) -> a new constant Value: how a converter pass adds nodes named after
# the node it replaces.
Make = Callable[..., object]
Const = Callable[[np.ndarray, str], object]


def _geometry(shape, groups) -> tuple[int, int, int, int]:
    """(N, C, G, per-channel size S) of an input of ``shape`` split into ``groups``."""
    if len(shape) < 2:
        raise ValueError(f"needs an input of shape (N, C, ...), got {list(shape)}")
    n, c = int(shape[0]), int(shape[1])
    g = int(groups)
    if g < 1 or c % g:
        raise ValueError(f"num_groups {g} must be >= 1 and divide the {c} channels")
    s = int(np.prod(shape[2:], dtype=np.int64))
    return n, c, g, s


def _check_channels(x: TensorType, v: TensorType, name: str, c: int) -> None:
    if v.shape != (c,):
        raise ValueError(f"{name} {list(v.shape)} must be ({c},), one per channel")
    if v.dtype != x.dtype:
        raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")


def _check_stat(x: TensorType, v: TensorType, name: str, n: int, g: int) -> None:
    if v.size != n * g:
        raise ValueError(f"{name} {list(v.shape)} must hold one value per sample and group "
                         f"({n} x {g})")
    if v.dtype != x.dtype:
        raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")


def group_norm(ins, outs, a) -> None:
    """y, mean, rstd into ``outs``; y's buffer holds x - mean while the variance is summed
    from it (``y`` may be ``x`` itself: only (N, G) temporaries)."""
    x, gamma, beta = ins
    y, mean, rstd = outs[:3]
    n, c, g, s = _geometry(x.shape, a["num_groups"])
    m = x.size // (n * g)
    x3, y3 = x.reshape(n, g, m), y.reshape(n, g, m)
    mu, r = mean.reshape(n, g, 1), rstd.reshape(n, g, 1)
    np.add.reduce(x3, axis=2, keepdims=True, out=mu)
    mu /= m
    np.subtract(x3, mu, out=y3)
    np.einsum("ngm,ngm->ng", y3, y3, out=r.reshape(n, g))
    r /= m  # the biased variance
    r += x.dtype.type(a["epsilon"])
    np.sqrt(r, out=r)
    np.divide(1, r, out=r)
    y3 *= r
    yc = y.reshape(n, c, s)
    yc *= gamma.reshape(c, 1)
    yc += beta.reshape(c, 1)


def group_norm_grad(ins, outs, a) -> None:
    """dx, dgamma, dbeta. With x_hat = (x - mean) * rstd and g = dy * gamma[c], per (sample,
    group) block: dx = rstd * (g - mean(g) - x_hat * mean(g * x_hat)); dgamma[c] = sum(dy *
    x_hat) and dbeta[c] = sum(dy) over the samples and the per-channel positions. dx's
    buffer holds x_hat until it is overwritten; one x-sized workspace holds dy * x_hat, then
    g."""
    dy, x, mean, rstd, gamma = ins
    dx, dgamma, dbeta = outs[:3]
    n, c, g, s = _geometry(x.shape, a["num_groups"])
    m = x.size // (n * g)
    work = outs[3].reshape(x.shape) if len(outs) > 3 and outs[3].size == x.size \
        else np.empty_like(x)
    x3, dx3, w3 = x.reshape(n, g, m), dx.reshape(n, g, m), work.reshape(n, g, m)
    r = rstd.reshape(n, g, 1)
    np.subtract(x3, mean.reshape(n, g, 1), out=dx3)
    dx3 *= r  # x_hat
    dyc, wc = dy.reshape(n, c, s), work.reshape(n, c, s)
    np.multiply(dy, dx, out=work)
    np.add.reduce(wc, axis=(0, 2), out=dgamma.reshape(c))
    np.add.reduce(dyc, axis=(0, 2), out=dbeta.reshape(c))
    np.multiply(dyc, gamma.reshape(c, 1), out=wc)  # g
    g_mean = np.add.reduce(w3, axis=2, keepdims=True)
    g_mean /= m
    gx_mean = np.einsum("ngm,ngm->ng", w3, dx3).reshape(n, g, 1)
    gx_mean /= m
    dx3 *= gx_mean
    np.subtract(w3, dx3, out=dx3)
    dx3 -= g_mean
    dx3 *= r


def group_norm_grad_ops(make: Make, const: Const, dy, x, gamma, num_groups: int, *, stats=None,
                        epsilon: float | None = None, want=(True, True, True)):
    """(dx, dgamma, dbeta) of GroupNorm written with ops MindSpore Lite has kernels for (the
    math of ``group_norm_grad``); an entry is None where ``want`` says it is not needed.

    ``stats`` is (mean, rstd) as GroupNormGrad takes them; None recomputes them from x with
    ``epsilon`` (a Lite GroupNormFusion does not output them). Everything runs on (N, G, M)
    and (N, C, S) views, which keeps the layout pass out of it (no 4-D broadcasting).
    The nodes are named by ``make``'s suffixes; dx, dgamma and dbeta are made last, by the
    suffixes "dx", "dgamma", "dbeta"."""
    want_dx, want_dgamma, want_dbeta = want
    shape = tuple(x.type.shape)
    n, c, g, s = _geometry(shape, num_groups)
    m = x.type.size // (n * g)
    dt = x.type.dtype
    blocks, per_channel, kept = (n, g, m), (n, c, s), (n, g, 1)
    dx = dgamma = dbeta = None
    if not any(want):
        return dx, dgamma, dbeta
    dyc = make("Reshape", [dy], "dy_channels", shape=per_channel)
    if want_dx or want_dgamma:
        xg = make("Reshape", [x], "x_groups", shape=blocks)
        if stats is None:
            mean = make("ReduceMean", [xg], "mean", axis=(2,), keep_dims=True)
            xc = make("Sub", [xg, mean], "centred")
            var = make("ReduceMean", [make("Mul", [xc, xc], "squares")], "variance",
                       axis=(2,), keep_dims=True)
            eps = const(np.asarray(epsilon, dt.np), "epsilon")
            one = const(np.asarray(1, dt.np), "one")
            std = make("Sqrt", [make("Add", [var, eps], "variance_eps")], "std")
            rstd = make("RealDiv", [one, std], "rstd")
        else:
            mean = make("Reshape", [stats[0]], "mean", shape=kept)
            rstd = make("Reshape", [stats[1]], "rstd", shape=kept)
            xc = make("Sub", [xg, mean], "centred")
        x_hat = make("Mul", [xc, rstd], "x_hat")
        if want_dx:
            gc = make("Mul", [dyc, make("Reshape", [gamma], "gamma_column", shape=(c, 1))],
                      "dy_gamma")
            gg = make("Reshape", [gc], "dy_gamma_groups", shape=blocks)
            g_mean = make("ReduceMean", [gg], "dy_gamma_mean", axis=(2,), keep_dims=True)
            gx_mean = make("ReduceMean", [make("Mul", [gg, x_hat], "dy_gamma_x_hat")],
                           "dy_gamma_x_hat_mean", axis=(2,), keep_dims=True)
            inner = make("Sub", [make("Sub", [gg, g_mean], "less_mean"),
                                 make("Mul", [x_hat, gx_mean], "x_hat_term")], "less_x_hat")
            dx = make("Reshape", [make("Mul", [inner, rstd], "dx_groups")], "dx", shape=shape)
        if want_dgamma:
            xh = make("Reshape", [x_hat], "x_hat_channels", shape=per_channel)
            dgamma = make("ReduceSum", [make("Mul", [dyc, xh], "dy_x_hat")], "dgamma",
                          axis=(0, 2), keep_dims=False)
    if want_dbeta:
        dbeta = make("ReduceSum", [dyc], "dbeta", axis=(0, 2), keep_dims=False)
    return dx, dgamma, dbeta


@op
class GroupNorm(OpDef):
    """(x, gamma, beta) -> (y, mean, rstd); mean and rstd of shape (N, num_groups)."""

    attrs = {"num_groups": REQUIRED, "epsilon": 1e-5}
    inplace = {0: 0}

    def infer(ins, a):
        x, gamma, beta = ins
        if x.dtype.np.kind != "f":
            raise ValueError(f"needs a float input, got {x.dtype.name}")
        n, c, g, _ = _geometry(x.shape, a["num_groups"])
        _check_channels(x, gamma, "gamma", c)
        _check_channels(x, beta, "beta", c)
        stat = TensorType((n, g), x.dtype)
        return [x, stat, stat]

    def kernel(ins, outs, a, rt):
        group_norm(ins, outs, a)

    def grad(g, node, douts):
        # MindSpore's bprop: GroupNormGrad(dout[0], x, out[1], out[2], gamma, num_groups,
        # True, True, True) (2.10 exports always set the three flags); the gradients of mean
        # and rstd are not propagated.
        x, gamma, beta = node.inputs
        dy = douts[0]
        if dy is None or not any(g.wants(v) for v in (x, gamma, beta)):
            return [None, None, None]
        dx, dgamma, dbeta = g.emit(
            "GroupNormGrad", [dy, x, node.outputs[1], node.outputs[2], gamma],
            num_groups=node.attrs["num_groups"], **dict.fromkeys(GN_FLAGS, True))
        return [dx if g.wants(x) else None, dgamma if g.wants(gamma) else None,
                dbeta if g.wants(beta) else None]


@op
class GroupNormGrad(OpDef):
    """(dy, x, mean, rstd, gamma) -> (dx, dgamma, dbeta). No .ms form: the converter writes
    it with Lite's ops (``group_norm_grad_ops``)."""

    attrs = {"num_groups": REQUIRED, **dict.fromkeys(GN_FLAGS, True)}

    def infer(ins, a):
        dy, x, mean, rstd, gamma = ins
        if x.dtype.np.kind != "f":
            raise ValueError(f"needs a float input, got {x.dtype.name}")
        if dy != x:
            raise ValueError(f"dy {dy} must match x {x}")
        n, c, g, _ = _geometry(x.shape, a["num_groups"])
        _check_stat(x, mean, "mean", n, g)
        _check_stat(x, rstd, "rstd", n, g)
        _check_channels(x, gamma, "gamma", c)
        return [x, gamma, gamma]

    def workspace(ins, a):
        return [ins[1]]  # dy * x_hat, then dy * gamma

    def kernel(ins, outs, a, rt):
        group_norm_grad(ins, outs, a)
