"""BatchNorm / BatchNormGrad kernels alone on the benchmark's shapes: time per call and the
bytes NumPy allocates per call (tracemalloc peak; the planned block scratch is passed in,
as the runtime does).

    .venv/bin/python bench/bn_kernels.py [--repeat 5] [--src OTHER_TREE]

``--src`` imports todkit from another checkout (e.g. ``git archive <rev> todkit | tar -x
-C /tmp/old``) to compare kernels before and after a change.

Shapes: W4's widest BatchNorm ([16,112,112,96] NHWC, training), a W4 late one, W6's
first and last (NHWC, training, with BatchNormGrad), and the NCHW / inference forms.
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


def _call(opname, ins, attrs, out_shapes):
    opdef = get_op(opname)
    types = [TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in ins]
    outs = [np.empty(s, np.float32) for s in out_shapes]
    ws = [np.empty(t.shape, t.dtype.np) for t in opdef.workspace_types(types, attrs)]
    return lambda: opdef.kernel(ins, outs + ws, attrs, _Rt)


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
        for opname, fn in runs:
            ms, mb = _measure(fn, args.repeat)
            print(f"{label:<10} {list(shape)!s:<20} {fmt:<5} {opname:<14} {ms:>10.2f} "
                  f"{mb:>9.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
