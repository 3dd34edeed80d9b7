"""BatchNorm / BatchNormGrad kernels alone on the benchmark's shapes: time per call and the
bytes NumPy allocates per call (tracemalloc peak; the planned block scratch is passed in,
as the runtime does).

    .venv/bin/python bench/bn_kernels.py [--repeat 5] [--src OTHER_TREE]

``--src`` imports todkit from another checkout (e.g. ``git archive <rev> todkit | tar -x
-C /tmp/old``) to compare kernels before and after a change.

Shapes: W4's widest BatchNorm ([16,112,112,96] NHWC, training), a W4 late one, W6's
first and last (NHWC, training, with BatchNormGrad), and the NCHW / inference forms.
Training NHWC cases also time BatchNorm + ReLU6 as two kernels and as the runtime's fused
call (runtime/rewrite_norm_act.py), and W4's 1x1 expansions + BatchNorm + ReLU6 as three
kernels and as one call (runtime/rewrite_conv_norm.py); a tree without those fused calls
(``--src`` of an older checkout) prints "-" for them.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import tracemalloc

import numpy as np

_src = sys.argv[sys.argv.index("--src") + 1] if "--src" in sys.argv[:-1] else None
sys.path.insert(0, _src or os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from todkit.core import dtypes  # noqa: E402
from todkit.ir.graph import TensorType  # noqa: E402
from todkit.opset.registry import get_op  # noqa: E402

EXPANSIONS = [  # (label, conv input shape, output channels): W4's fused 1x1 expansions
    ("W4 exp1", (16, 112, 112, 16), 96),
    ("W4 exp2", (16, 56, 56, 24), 144),
]
CASES = [  # (label, shape, data_format, is_training)
    ("W4 widest", (16, 112, 112, 96), "NHWC", True),
    ("W4 late", (16, 7, 7, 960), "NHWC", True),
    ("W6 first", (32, 16, 16, 64), "NHWC", True),
    ("W6 last", (32, 1, 1, 512), "NHWC", True),
    ("NCHW", (16, 96, 112, 112), "NCHW", True),
    ("inference", (16, 112, 112, 96), "NHWC", False),
]


class _Rt:
    training = True


def _call_outs(opname, ins, attrs, out_shapes):
    """A call of the op's kernel on fresh outputs and workspaces, and those outputs."""
    opdef = get_op(opname)
    types = [TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in ins]
    outs = [np.empty(s, np.float32) for s in out_shapes]
    ws = [np.empty(t.shape, t.dtype.np) for t in opdef.workspace_types(types, attrs)]
    return (lambda: opdef.kernel(ins, outs + ws, attrs, _Rt)), outs


def _call(opname, ins, attrs, out_shapes):
    return _call_outs(opname, ins, attrs, out_shapes)[0]


def _measure(fn, repeat):
    fn()
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return best * 1e3, peak / 2**20


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--src", help="todkit source tree to import (default: this checkout)")
    args = ap.parse_args(argv)
    rng = np.random.default_rng(0)
    print(f"todkit from {os.path.dirname(os.path.dirname(sys.modules['todkit'].__file__))}")
    print(f"{'case':<10} {'shape':<20} {'fmt':<5} {'op':<14} {'fastest ms':>10} {'alloc MB':>9}")
    for label, shape, fmt, training in CASES:
        c = shape[3] if fmt == "NHWC" else shape[1]
        x = (rng.standard_normal(shape, dtype=np.float32) * 2 + 1)
        vec = [np.ones(c, np.float32), np.zeros(c, np.float32), np.zeros(c, np.float32),
               np.ones(c, np.float32)]
        a = {"is_training": training, "epsilon": 1e-5, "momentum": 0.1, "data_format": fmt}
        runs = [("BatchNorm", _call("BatchNorm", [x, *vec], a, [shape] + [(c,)] * 4))]
        if training:
            dy = rng.standard_normal(shape, dtype=np.float32)
            ga = {k: a[k] for k in ("is_training", "epsilon", "data_format")}
            runs.append(("BatchNormGrad", _call("BatchNormGrad", [dy, x, vec[0], vec[1],
                                                                 vec[3], vec[3]], ga,
                                                [shape, (c,), (c,)])))
        if training and fmt == "NHWC":
            runs += _bn_relu6(x, vec, a, shape, c)
        _report(label, shape, fmt, runs, args.repeat)
    for label, shape, o in EXPANSIONS:
        _report(label, shape, "NHWC", _expansion(rng, shape, o), args.repeat)
    return 0


def _report(label, shape, fmt, runs, repeat):
    for opname, fn in runs:
        if fn is None:
            print(f"{label:<10} {list(shape)!s:<20} {fmt:<5} {opname:<14} {'-':>10} {'-':>9}")
            continue
        ms, mb = _measure(fn, repeat)
        print(f"{label:<10} {list(shape)!s:<20} {fmt:<5} {opname:<14} {ms:>10.2f} {mb:>9.2f}")


def _bn_relu6(x, vec, a, shape, c):
    """BatchNorm then ReLU6 as two kernels, and as the fused call (if this tree has it)."""
    bn, bn_outs = _call_outs("BatchNorm", [x, *vec], a, [shape] + [(c,)] * 4)
    relu6 = get_op("ReLU6")
    act = np.empty(shape, np.float32)

    def two():
        bn()
        relu6.kernel([bn_outs[0]], [act], {}, _Rt)
    try:
        from todkit.opset.norm import batch_norm
        from todkit.runtime.rewrite_norm_act import ACTS
    except ImportError:
        return [("BN+ReLU6", two), ("BN+ReLU6 fused", None)]
    outs = [act] + [np.empty(c, np.float32) for _ in range(4)]
    ws = get_op("BatchNorm").workspace_types([TensorType(shape, dtypes.float32)], a)
    outs += [np.empty(t.shape, t.dtype.np) for t in ws]
    return [("BN+ReLU6", two),
            ("BN+ReLU6 fused", lambda: batch_norm([x, *vec], outs, a, _Rt, ACTS["ReLU6"]))]


def _expansion(rng, shape, o):
    """A 1x1 convolution, BatchNorm and ReLU6 as three kernels, and as one call."""
    k = shape[3]
    x = rng.standard_normal(shape, dtype=np.float32)
    w = rng.standard_normal((o, 1, 1, k), dtype=np.float32) * 0.3
    vec = [np.ones(o, np.float32), np.zeros(o, np.float32), np.zeros(o, np.float32),
           np.ones(o, np.float32)]
    conv_a = {**get_op("Conv2D").attrs, "out_channel": o, "kernel_size": (1, 1),
              "format": "NHWC"}
    a = {"is_training": True, "epsilon": 1e-5, "momentum": 0.1, "data_format": "NHWC"}
    out_shape = shape[:3] + (o,)
    conv, (xc,) = _call_outs("Conv2D", [x, w], conv_a, [out_shape])
    bn_relu6 = _bn_relu6(xc, vec, a, out_shape, o)[0][1]

    def three():
        conv()
        bn_relu6()
    try:
        from todkit.opset.norm import pointwise_batch_norm
        from todkit.runtime.rewrite_norm_act import ACTS
    except ImportError:
        return [("1x1+BN+ReLU6", three), ("1x1+BN+R6 fused", None)]
    outs = [np.empty(out_shape, np.float32)] + [np.empty(o, np.float32) for _ in range(4)]
    return [("1x1+BN+ReLU6", three),
            ("1x1+BN+R6 fused",
             lambda: pointwise_batch_norm([x, w, *vec], outs, a, _Rt, ACTS["ReLU6"]))]


if __name__ == "__main__":
    sys.exit(main())
