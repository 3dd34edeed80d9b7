"""Where a todkit train step goes: per-kernel times, cProfile, and per-step allocations.

    .venv/bin/python bench/profile_step.py W2 [--steps 200] [--what ops,cprofile,alloc]

Exports and converts the workload's model (bench/fw_todkit.py), loads the .ms with todkit.lite
and runs train steps:
- ``ops``: each bound kernel of the train executor timed on its own (the same calls
  ``Executor.invoke`` makes), summed per op type and per node, against the whole step;
- ``cprofile``: the top functions by own time over the steps;
- ``alloc``: tracemalloc over steps after warm-up: bytes and blocks NumPy allocates per step
  (temporaries; a step that only writes into the arena allocates nothing) and where.
Set MALLOC_MMAP_THRESHOLD_/MALLOC_TRIM_THRESHOLD_ around it to see what returning large
temporaries to the OS costs (bench/README section in the top-level README).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import sys
import tempfile
import time
import tracemalloc
from collections import defaultdict

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import fw_todkit  # noqa: E402
from workloads import WORKLOADS  # noqa: E402


def load(w, cache, threads=1):
    fw_todkit.prepare(w, cache, "todkit")
    step, _ = fw_todkit.setup(w, threads, cache, "todkit")
    from todkit import lite  # noqa: F401  (already imported by setup)

    return step


def session_of(step):
    # setup's closure holds the lite Model; its session has the executors.
    model = step.__closure__[[c.cell_contents.__class__.__name__ for c in step.__closure__]
                             .index("Model")].cell_contents
    return model.session


def per_kernel(sess, steps, top=12):
    ex = sess.train
    ex_rt = sess.rt
    ex_rt.training = True
    # The calls Executor.invoke makes (fused optimizer groups as one call, named after the
    # group's first node; views make no call).
    calls = getattr(ex, "calls", ex.bound)
    call_nodes = [ex.nodes[i] for i in getattr(ex, "_call_step", range(len(ex.bound)))]
    per_node = np.zeros(len(calls))
    t_all = time.perf_counter()
    for _ in range(steps):
        for i, (kernel, ins, outs, attrs) in enumerate(calls):
            t0 = time.perf_counter()
            kernel(ins, outs, attrs, ex_rt)
            per_node[i] += time.perf_counter() - t0
    wall = time.perf_counter() - t_all
    t0 = time.perf_counter()
    for _ in range(steps):
        ex.invoke(ex_rt)
    plain = (time.perf_counter() - t0) / steps * 1e3
    per_node = per_node / steps * 1e3
    by_op = defaultdict(float)
    count = defaultdict(int)
    for node, t in zip(call_nodes, per_node):
        by_op[node.op] += t
        count[node.op] += 1
    total = per_node.sum()
    lines = [f"step (Executor.invoke) {plain:.3f} ms; kernels sum {total:.3f} ms; timing loop "
             f"{wall / steps * 1e3:.3f} ms per step; {len(ex.bound)} nodes, "
             f"{len(calls)} calls",
             f"  {'op':<40} {'nodes':>5} {'ms/step':>9} {'share':>6}"]
    for op_name, t in sorted(by_op.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {op_name:<40} {count[op_name]:>5} {t:>9.3f} {t / total:>6.1%}")
    lines.append("  top nodes:")
    for i in np.argsort(-per_node)[:top]:
        n = call_nodes[i]
        shapes = " ".join(str(list(v.type.shape)) for v in n.inputs[:2])
        lines.append(f"    {per_node[i]:>8.3f} ms {n.op:<28} {shapes}  {n.name[-60:]}")
    return "\n".join(lines)


def profile(step, steps):
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(steps):
        step()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(18)
    return "\n".join(line for line in s.getvalue().splitlines() if line.strip())


def allocations(step, steps):
    tracemalloc.start(1)
    snap0 = tracemalloc.take_snapshot()
    tracemalloc.reset_peak()
    for _ in range(steps):
        step()
    _, peak = tracemalloc.get_traced_memory()
    snap1 = tracemalloc.take_snapshot()
    tracemalloc.stop()
    # Blocks freed within the step do not show in a diff: count them with a filter-free
    # statistic of all blocks ever traced is impossible, so report the peak and the diff.
    lines = [f"traced peak above the start during {steps} steps: {peak / 2**20:.2f} MB"]
    stats = snap1.compare_to(snap0, "lineno")
    grown = [s for s in stats if s.size_diff > 0][:8]
    if grown:
        lines.append("  still held after the steps (should be nothing):")
        lines += [f"    {s.size_diff / 2**10:10.1f} KB {s.traceback}" for s in grown]
    return "\n".join(lines)


def temporaries(sess, steps):
    """Per-kernel peak of traced allocations above its start: the temporaries a kernel
    makes (arena outputs are preallocated, so a kernel writing only into them makes 0)."""
    ex = sess.train
    rt = sess.rt
    rt.training = True
    peaks = np.zeros(len(ex.bound))
    tracemalloc.start(1)
    for _ in range(steps):
        for i, (kernel, ins, outs, attrs) in enumerate(ex.bound):
            base = tracemalloc.get_traced_memory()[0]
            tracemalloc.reset_peak()
            kernel(ins, outs, attrs, rt)
            peaks[i] = max(peaks[i], tracemalloc.get_traced_memory()[1] - base)
    tracemalloc.stop()
    by_op = defaultdict(float)
    for node, p in zip(ex.nodes, peaks):
        by_op[node.op] = max(by_op[node.op], p)
    total = peaks.sum()
    lines = [f"temporaries: sum over kernels of each one's peak {total / 2**20:.2f} MB per step "
             f"(arena {sess.arena.nbytes / 2**20:.2f} MB)",
             "  largest per op (MB):"]
    for op_name, p in sorted(by_op.items(), key=lambda kv: -kv[1])[:10]:
        if p > 0:
            lines.append(f"    {op_name:<40} {p / 2**20:9.3f}")
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("workloads", nargs="*", default=["W1", "W2", "W3"])
    ap.add_argument("--steps", type=int, default=0, help="default: per workload")
    ap.add_argument("--what", default="ops,cprofile,alloc")
    ap.add_argument("--top", type=int, default=12, help="nodes listed by time")
    ap.add_argument("--threads", type=int, default=1,
                    help="the session's thread count (lite.Context thread_num) and the BLAS "
                         "threads of the per-kernel timings")
    args = ap.parse_args(argv)
    from todkit.runtime import blas

    blas.set_threads(args.threads)
    what = set(args.what.split(","))
    for wid in args.workloads:
        w = WORKLOADS[wid]
        steps = args.steps or max(w.min_steps, min(w.steps // 4, 200))
        with tempfile.TemporaryDirectory() as cache:
            step = load(w, cache, args.threads)
            for _ in range(w.warmup):
                step()
            sess = session_of(step)
            print(f"== {wid} {w.title}: {steps} steps, OPENBLAS_CORETYPE="
                  f"{os.environ.get('OPENBLAS_CORETYPE')}, MALLOC_MMAP_THRESHOLD_="
                  f"{os.environ.get('MALLOC_MMAP_THRESHOLD_')}")
            if "ops" in what:
                print(per_kernel(sess, steps, args.top))
            if "cprofile" in what:
                print(profile(step, steps))
            if "alloc" in what:
                print(allocations(step, min(steps, 20)))
                print(temporaries(sess, min(steps, 5)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
