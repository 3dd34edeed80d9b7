"""One framework, one workload, one thread count, in its own process (run by bench/run.py).

    python bench/child.py run  FRAMEWORK WORKLOAD THREADS CACHE_DIR
    python bench/child.py prep FRAMEWORK WORKLOAD CACHE_DIR

``prep`` writes what a framework loads from disk (todkit: the converted .ms; ONNX Runtime: the
training artifacts) so that ``run`` measures only loading and training. ``run`` builds the
train step, warms it up, times single steps (perf_counter around one synchronous step; the
batch is fed once, as every framework reuses its input tensors) and prints one line
``BENCH-RESULT {json}`` with the median, p10/p90 and IQR in ms, and the process's peak RSS
(``peak_rss_mb``: its own high-water mark) before and after the model was built.
"""

from __future__ import annotations

import importlib
import json
import os
import resource
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from workloads import WORKLOADS  # noqa: E402


def peak_rss_mb() -> float:
    """This process's own peak resident memory: Linux's VmHWM. Not ``ru_maxrss``, which a
    process started by ``subprocess`` (vfork + exec) begins at its parent's peak: with
    bench/run.py's second-core probe (~61 MB) every small cell read 61 MB (W1's own peak
    is ~32 MB)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def quantile(sorted_xs, q):
    if not sorted_xs:
        return float("nan")
    pos = (len(sorted_xs) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(sorted_xs) - 1)
    return sorted_xs[lo] + (sorted_xs[hi] - sorted_xs[lo]) * (pos - lo)


def measure(step, w):
    losses = []
    for _ in range(w.warmup):
        losses.append(step())
    first_loss = losses[0] if losses else None
    times = []
    start = time.perf_counter()
    loss = None
    for i in range(w.steps):
        t0 = time.perf_counter()
        loss = step()
        times.append(time.perf_counter() - t0)
        if i + 1 >= w.min_steps and time.perf_counter() - start > w.budget_s:
            break
    ts = sorted(t * 1e3 for t in times)
    return {"median_ms": quantile(ts, 0.5), "p10_ms": quantile(ts, 0.1),
            "p90_ms": quantile(ts, 0.9), "iqr_ms": quantile(ts, 0.75) - quantile(ts, 0.25),
            "min_ms": ts[0], "steps": len(ts), "warmup": w.warmup,
            "first_loss": _f(first_loss), "last_loss": _f(loss)}


def _f(x):
    try:
        return float(x)
    except (TypeError, ValueError):
        return None


def blas_info():
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [{k: d.get(k) for k in ("internal_api", "num_threads", "architecture", "version")}
            for d in threadpool_info()]


def _is_skip(e):
    """Models a framework does not have (yet) are skips, not failures."""
    return isinstance(e, NotImplementedError) or type(e).__name__ == "Pending"


def main(argv):
    mode, fw = argv[0], argv[1]
    w = WORKLOADS[argv[2]].for_framework(fw)
    mod = importlib.import_module("fw_" + fw.split("-")[0])
    if mode == "prep":
        try:
            info = mod.prepare(w, argv[3], fw) or {}
        except Exception as e:
            if not _is_skip(e):
                raise
            info = {"skipped": str(e)}
        print("BENCH-RESULT " + json.dumps({"prepared": True, **info}))
        return 0
    threads, cache = int(argv[3]), argv[4]
    rss_start = peak_rss_mb()
    t0 = time.perf_counter()
    try:
        step, info = mod.setup(w, threads, cache, fw)
    except Exception as e:
        if not _is_skip(e):
            raise
        print("BENCH-RESULT " + json.dumps({"skipped": str(e)}))
        return 0
    build_s = time.perf_counter() - t0
    rss_built = peak_rss_mb()
    res = measure(step, w)
    res.update(info or {})
    res.update({"build_s": build_s, "rss_start_mb": rss_start, "rss_built_mb": rss_built,
                "peak_rss_mb": peak_rss_mb(), "blas": blas_info(),
                "env": {k: os.environ.get(k) for k in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE",
                                                       "OMP_NUM_THREADS",
                                                       "OPENBLAS_NUM_THREADS")}})
    print("BENCH-RESULT " + json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
