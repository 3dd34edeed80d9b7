"""Ops for MindSpore 2.10 layers whose exports need more than the other families give:
``SiLU`` (nn.SiLU) and ``UnsortedSegmentSum`` (nn.Embedding's gradient, and Gather's).

- ``SiLU``: y = x * sigmoid(x), Lite's ``Activation{SWISH}`` (nnacl's Swish computes
  x * sigmoid(x) too). Lite has no gradient kernel for it: its ``ActivationGrad`` kernel
  (fp32_grad/activation_grad.cc) takes RELU, RELU6, LEAKY_RELU, SIGMOID, TANH, HSWISH,
  HSIGMOID, ELU and GELU only, and nnacl's fp32_grad has no SwishGrad. So the gradient (and
  2.10's own ``SiLUGrad(dout, x)``, read through ``formats/mindir/lowered.LOWERED``) is
  spelled with ops Lite has: the gradient of x * Sigmoid(x) as the chain rule gives it,
  ``dout * s + SigmoidGrad(s, dout * x)`` with s = Sigmoid(x), which is
  dout * (s + x s (1 - s)), MindSpore's SiLUGrad.
- ``UnsortedSegmentSum(x, segment_ids){num_segments}``: out[i] = sum of x[j...] over the
  j with segment_ids[j] == i; out has shape (num_segments,) + x.shape[ids.ndim:]. An id
  outside [0, num_segments) is skipped, as Lite's kernel (nnacl UnsortedSegmentSum) does
  (MindSpore 2.10's CPU kernel rejects it instead; a Gather-made gradient never has one, as
  Gather rejects such an index first). Lite's ``UnsortedSegmentSum`` member takes num_segments as a
  constant int32 third input. MindSpore's gradient of Gather (so of nn.Embedding) is
  ``UnsortedSegmentSum(dout, indices, rows)``, and todkit's Gather rule now emits the same.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import REQUIRED, OpDef, op
from todkit.opset.rules import float_like

# make(op, inputs, suffix) -> the Value of a new node's output 0: how a caller (a gradient
# rule, or a MINDIR lowering naming its nodes) adds nodes.
Make = Callable[[str, list, str], object]


def silu_grad(make: Make, x, dout):
    """dx of y = x * sigmoid(x) with ops Lite has: dout * s + SigmoidGrad(s, dout * x). The
    last node made is named with the empty suffix (a lowering gives it the file's name)."""
    s = make("Sigmoid", [x], "Sigmoid")
    through_s = make("Mul", [dout, s], "Mul")          # d(x * s) / dx with s held
    through_x = make("Mul", [dout, x], "Mul_x")        # d(x * s) / ds ...
    via_sigmoid = make("SigmoidGrad", [s, through_x], "SigmoidGrad")  # ... times s (1 - s)
    return make("Add", [through_s, via_sigmoid], "")


@op
class SiLU(OpDef):
    """y = x * sigmoid(x) (nn.SiLU; Lite Activation{SWISH})."""

    infer = float_like

    def kernel(ins, outs, a, rt):
        x, out = ins[0], outs[0]
        # sigmoid as the Sigmoid kernel computes it (exp overflows to inf for very negative
        # x, giving 0), then times x
        with np.errstate(over="ignore"):
            np.negative(x, out=out)
            np.exp(out, out=out)
        out += 1
        np.divide(x, out, out=out)

    def grad(g, node, douts):
        (x,) = node.inputs
        if not g.wants(x):
            return [None]
        return [silu_grad(lambda o, ins, _: g.emit(o, ins), x, douts[0])]


@op
class UnsortedSegmentSum(OpDef):
    """Sums the slices of x into num_segments rows by segment_ids (ids outside
    [0, num_segments) are skipped). No gradient rule: todkit emits it only as a gradient."""

    attrs = {"num_segments": REQUIRED}

    def infer(ins, a):
        x, ids = ins
        if ids.dtype.np.kind not in "iu":
            raise ValueError(f"segment_ids must be integers, got {ids.dtype.name}")
        k = len(ids.shape)
        if k == 0 or tuple(x.shape[:k]) != tuple(ids.shape):
            raise ValueError(f"segment_ids of shape {list(ids.shape)} must be a leading part "
                             f"of x's shape {list(x.shape)}")
        n = int(a["num_segments"])
        if n <= 0:
            raise ValueError(f"num_segments must be positive, got {n}")
        return [TensorType((n, *x.shape[k:]), x.dtype)]

    def kernel(ins, outs, a, rt):
        x, ids = ins
        out = outs[0]
        n = out.shape[0]
        flat_ids = ids.reshape(-1)
        rows = x.reshape((flat_ids.size, *out.shape[1:]))
        keep = (flat_ids >= 0) & (flat_ids < n)
        if not keep.all():
            flat_ids, rows = flat_ids[keep], rows[keep]
        out.fill(0)
        # unbuffered: repeated ids (a token seen twice in a batch) each add their slice
        np.add.at(out, flat_ids, rows)
