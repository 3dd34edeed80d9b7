"""Dropout (MindSpore 2.x: outputs (y, mask)) and DropoutGrad(dy, mask).

In training (the run context's ``training``) each element is kept with probability
``keep_prob`` and scaled by 1/keep_prob; ``mask`` holds 0 / 1 and DropoutGrad is
``dy * mask / keep_prob``, as MindSpore's CPU and Lite's kernels. In eval mode Dropout is
the identity with a mask of ones, as MindSpore Lite's kernel (the converter keeps Dropout in
train models). Random numbers come
from ``rt.rng``, so a seeded run repeats.
"""

from __future__ import annotations

import numpy as np

from todkit.opset.registry import OpDef, op


def check_keep(a) -> float:
    """keep_prob of Dropout's attributes (Dropout2D's too), checked to be in (0, 1]."""
    keep = float(a["keep_prob"])
    if not 0.0 < keep <= 1.0:
        raise ValueError(f"keep_prob must be in (0, 1], got {keep}")
    return keep


@op
class Dropout(OpDef):
    attrs = {"keep_prob": 0.5, "Seed0": 0, "Seed1": 0}

    def infer(ins, a):
        (x,) = ins
        check_keep(a)
        if x.dtype.np.kind != "f":
            raise ValueError(f"needs a float input, got {x.dtype.name}")
        return [x, x]

    def kernel(ins, outs, a, rt):
        x, (y, mask) = ins[0], outs
        keep = check_keep(a)
        if rt is not None and rt.training and keep < 1.0:
            np.less(rt.rng.random(x.shape), keep, out=mask, casting="unsafe")
            np.multiply(x, mask, out=y)
            y *= x.dtype.type(1.0 / keep)
        else:
            mask[...] = 1
            np.copyto(y, x)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x) or douts[0] is None:
            return [None]
        return [g.emit("DropoutGrad", [douts[0], node.outputs[1]],
                       keep_prob=node.attrs["keep_prob"])]


@op
class DropoutGrad(OpDef):
    """dx = dy * mask / keep_prob."""

    attrs = {"keep_prob": 0.5}

    def infer(ins, a):
        dy, mask = ins
        if dy != mask:
            raise ValueError(f"dy {dy} and mask {mask} differ")
        return [dy]

    def kernel(ins, outs, a, rt):
        np.multiply(ins[0], ins[1], out=outs[0])
        outs[0] *= outs[0].dtype.type(1.0 / check_keep(a))
