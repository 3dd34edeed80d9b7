"""Build-time call rewrites: one fused call in place of several bound kernels.

A rewriter looks at an executor's nodes and pre-bound calls (``Executor.bound``) and
returns ``{step: entry or None}``: the call that runs in place of node ``step``'s kernel
(``(kernel, ins, outs, attrs)``, like a bound entry) or None for no call. The per-node
entries stay bound: the traced loop (``invoke_traced``) and deferred updates still run
them one by one, so a rewrite may only change how fast a step is, never what it computes
beyond float rounding. The graph (and so any export) is untouched.

Rules a rewriter keeps:
- it skips steps in ``ctx.taken`` (already replaced by another rewrite or a fused
  optimizer group) and steps whose bound kernel is not their op's own (accumulate mode);
- a replaced run of steps stays on one side of ``ctx.split`` (the train step runs the
  compute part and the update part separately when the non-finite guard can skip);
- a value the replaced steps produced must still hold its data after the fused call if
  a step outside the run reads it or it is in ``ctx.outside`` (read after the step).
A rewriter marked ``wraps = True`` may also return, for a step an earlier rewriter took
(``ctx.chosen``: their entries so far), a call that runs that entry's computation some
other way (rewrite_parallel: the same kernel in parallel pieces).

``REWRITERS`` lists them in the order they are tried; the session calls them for the
train and the eval executor after binding (and again whenever bound entries change).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from todkit.runtime.rewrite_conv_norm import rewrite_conv_norm
from todkit.runtime.rewrite_dense import rewrite_dense
from todkit.runtime.rewrite_norm_act import rewrite_norm_act
from todkit.runtime.rewrite_parallel import rewrite_parallel
from todkit.runtime.rewrite_transposed_input import rewrite_transposed_input


@dataclass
class RewriteContext:
    outside: set[int]  # ids of values read after the step (outputs, deferred inputs)
    split: int  # first step of the update phase (len(nodes) when there is none)
    taken: set[int] = field(default_factory=set)  # steps already replaced
    threads: int = 1  # threads a step may use (the session's)
    chosen: dict = field(default_factory=dict)  # step -> entry the rewriters chose so far


Rewriter = Callable[[object, RewriteContext], dict]

REWRITERS: list[Rewriter] = []
REWRITERS.append(rewrite_transposed_input)  # Dense after a transposed input (W3)
REWRITERS.append(rewrite_conv_norm)  # 1x1 conv -> BatchNorm (-> ReLU6), folded (W4)
REWRITERS.append(rewrite_norm_act)  # BatchNorm -> ReLU6 / ReLU, clipped in cache (W4)
REWRITERS.append(rewrite_dense)  # Dense chains, lean MatMuls, scalar updates (W1/W7)
REWRITERS.append(rewrite_parallel)  # last: large calls in parallel pieces (2+ threads)


def apply_rewrites(ex, ctx: RewriteContext) -> dict:
    """Run every rewriter on executor ``ex``; returns the merged ``{step: entry|None}``."""
    fused = ctx.chosen
    for rewrite in REWRITERS:
        wraps = getattr(rewrite, "wraps", False)
        for step, entry in rewrite(ex, ctx).items():
            if step in ctx.taken and not (wraps and fused.get(step) is not None):
                raise AssertionError(f"rewriter {rewrite.__name__} replaced step {step} twice")
            fused[step] = entry
            ctx.taken.add(step)
    return fused
