"""Batch normalisation: BatchNorm (5 outputs, updates its moving statistics in training) and
BatchNormGrad, with the semantics of MindSpore's CPU kernels (oneDNN underneath).

- Training (``is_training`` and the run context in train mode): normalise with the batch
  mean and the *biased* batch variance; outputs 3 and 4 (MindSpore's reserve_space_1/2, what
  the CPU kernel fills and BatchNormGrad reads as save_mean / save_variance) hold them, and
  outputs 1 and 2 hold the same (MindSpore documents them as batch_mean / batch_variance).
  The moving statistics (inputs 3, 4) become ``moving = (1 - momentum) * moving + momentum *
  batch`` with the *unbiased* variance (times M/(M-1), M values per channel): MindSpore
  2.10's reference runs (tests/fixtures/reference/bn_momentum) match this to 2e-7 and the
  biased form only to 2e-3; MindSpore Lite's FusedBatchNorm does the same. MINDIR's
  ``momentum`` is 1 - nn.BatchNorm2d's ``momentum``.
- Inference: normalise with the moving statistics, which stay as they are; outputs 1..4 are
  copies of them.

Inputs are [N, C] (BatchNorm1d) or 4-D in ``data_format`` NCHW / NHWC.
"""

from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.layout import Layout
from todkit.opset.registry import OpDef, op

BN_ATTRS = {"is_training": False, "epsilon": 1e-5, "momentum": 0.1, "data_format": "NCHW"}


def _channel_view(x_ndim: int, fmt: str):
    """(channel axis, reduction axes, reshape of a [C] vector) for an input of this rank."""
    if x_ndim == 2:
        return 1, (0,), lambda v: v
    lay = Layout(fmt)
    return lay.channel_axis, lay.reduce_axes(x_ndim), lay.per_channel


def _check(x, vectors, fmt):
    if len(x.shape) not in (2, 4):
        raise ValueError(f"needs a 2-D or 4-D input, got {list(x.shape)}")
    axis = _channel_view(len(x.shape), fmt)[0]
    c = x.shape[axis]
    for name, v in vectors.items():
        if v.shape != (c,):
            raise ValueError(f"{name} {list(v.shape)} does not match {c} channels")
        if v.dtype != x.dtype:
            raise ValueError(f"{name} dtype {v.dtype.name} differs from x {x.dtype.name}")
    return TensorType((c,), x.dtype)


def batch_training(a, rt) -> bool:
    return bool(a["is_training"]) and (rt is None or rt.training)


@op
class BatchNorm(OpDef):
    """(x, gamma, beta, moving_mean, moving_variance) -> (y, batch_mean, batch_variance,
    saved_mean, saved_variance); training updates moving_mean / moving_variance in place."""

    attrs = dict(BN_ATTRS)
    mutates = (3, 4)

    @classmethod
    def mutated(cls, attrs):
        # Inference-mode BatchNorm only reads its moving statistics.
        return cls.mutates if attrs["is_training"] else ()

    def infer(ins, a):
        x, gamma, beta, mean, var = ins
        vec = _check(x, {"gamma": gamma, "beta": beta, "moving_mean": mean,
                         "moving_variance": var}, a["data_format"])
        return [x, vec, vec, vec, vec]

    def kernel(ins, outs, a, rt):
        x, gamma, beta, moving_mean, moving_var = ins
        y, out_mean, out_var, save_mean, save_var = outs
        _, axes, shaped = _channel_view(x.ndim, a["data_format"])
        if batch_training(a, rt):
            np.mean(x, axis=axes, out=save_mean)
            centred = x - shaped(save_mean)
            np.mean(np.square(centred), axis=axes, out=save_var)
            m = x.dtype.type(a["momentum"])
            moving_mean *= 1 - m
            moving_mean += m * save_mean
            count = x.size // save_var.size
            moving_var *= 1 - m
            moving_var += (m * count / max(count - 1, 1)) * save_var
            mean, var = save_mean, save_var
        else:
            np.copyto(save_mean, moving_mean)
            np.copyto(save_var, moving_var)
            mean, var = save_mean, save_var
            centred = x - shaped(mean)
        np.copyto(out_mean, mean)
        np.copyto(out_var, var)
        scale = gamma / np.sqrt(var + x.dtype.type(a["epsilon"]))
        np.multiply(centred, shaped(scale), out=y)
        y += shaped(beta)

    def grad(g, node, douts):
        dy = douts[0]
        x, gamma, beta, mean, var = node.inputs
        if dy is None or not any(g.wants(v) for v in (x, gamma, beta)):
            return [None] * 5
        a = node.attrs
        if a["is_training"]:
            saved_mean, saved_var = node.outputs[3], node.outputs[4]
        else:
            saved_mean, saved_var = mean, var
        dx, dgamma, dbeta = g.emit(
            "BatchNormGrad", [dy, x, gamma, saved_mean, saved_var, node.outputs[2]],
            is_training=a["is_training"], epsilon=a["epsilon"], data_format=a["data_format"])
        return [dx if g.wants(x) else None, dgamma if g.wants(gamma) else None,
                dbeta if g.wants(beta) else None, None, None]


@op
class BatchNormGrad(OpDef):
    """(dy, x, gamma, saved_mean, saved_variance, reserve) -> (dx, dgamma, dbeta). The saved
    statistics are BatchNorm's outputs 3 and 4 in training, the moving ones in inference;
    ``reserve`` (BatchNorm's output 2) is not read, as in MindSpore's CPU kernel."""

    attrs = {"is_training": False, "epsilon": 1e-5, "data_format": "NCHW"}

    def infer(ins, a):
        dy, x, gamma, mean, var, _reserve = ins
        if dy != x:
            raise ValueError(f"dy {dy} must match x {x}")
        vec = _check(x, {"gamma": gamma, "saved_mean": mean, "saved_variance": var},
                     a["data_format"])
        return [x, vec, vec]

    def kernel(ins, outs, a, rt):
        dy, x, gamma, mean, var, _ = ins
        dx, dgamma, dbeta = outs
        _, axes, shaped = _channel_view(x.ndim, a["data_format"])
        inv_std = 1 / np.sqrt(var + x.dtype.type(a["epsilon"]))
        x_hat = (x - shaped(mean)) * shaped(inv_std)
        np.sum(dy, axis=axes, out=dbeta)
        np.sum(dy * x_hat, axis=axes, out=dgamma)
        if a["is_training"]:
            # The batch statistics depend on x: dx = g*inv_std/M * (M*dy - dbeta - x_hat*dgamma)
            count = x.size // x.shape[_channel_view(x.ndim, a["data_format"])[0]]
            np.multiply(x_hat, shaped(dgamma / count), out=dx)
            dx += shaped(dbeta / count)
            np.subtract(dy, dx, out=dx)
        else:
            np.copyto(dx, dy)
        dx *= shaped(gamma * inv_std)
