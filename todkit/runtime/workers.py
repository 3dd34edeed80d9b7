"""A small persistent pool of worker threads, and the parallel context a split call runs in.

NumPy releases the GIL inside ufunc loops, copies and BLAS calls, so Python threads that
each run one piece of a large kernel (half the batch, half the blocks) run at once: on the
2-core bench machine an in-cache ``np.sin`` loop ran 1.85x faster as two pieces, a 64 MB
add 1.05-1.15x (memory bandwidth), and pieces of ~4 us NumPy calls not at all (the GIL is
held for about as long as it is released). A hand-off costs ~13 us (two locks per worker,
median), so only calls of several hundred microseconds are split
(runtime/rewrite_parallel.py decides).

One pool per thread count is made the first time a session asks for it and shared by every
session of the process; its threads wait on locks between calls (no thread is made per
step). A pool used by another Python thread at the moment runs the caller's pieces one
after the other instead of waiting. After ``fork`` the child makes its own workers on first
use (threads do not survive a fork).
"""

from __future__ import annotations

import itertools
import os
import threading

import numpy as np

from todkit.runtime import blas


class _Worker:
    """One thread running one task at a time, handed over through two locks."""

    def __init__(self):
        self._go = threading.Lock()
        self._go.acquire()
        self._done = threading.Lock()
        self._done.acquire()
        self._task = None
        self._error: BaseException | None = None
        threading.Thread(target=self._loop, name="todkit-worker", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self._go.acquire()
            try:
                self._task()
            except BaseException as e:  # handed back to the caller by wait()
                self._error = e
            self._task = None
            self._done.release()

    def start(self, task) -> None:
        self._task = task
        self._go.release()

    def wait(self) -> BaseException | None:
        self._done.acquire()
        error, self._error = self._error, None
        return error


class Pool:
    """``threads`` - 1 workers; ``run(tasks)`` runs tasks[0] in the caller and the others on
    the workers, and returns when all are done (re-raising the first error)."""

    def __init__(self, threads: int):
        self.threads = int(threads)
        self._busy = threading.Lock()
        self._pid = -1
        self._workers: list[_Worker] = []

    def _ensure(self) -> None:
        if self._pid != os.getpid():  # first use, or a forked child: no live workers
            self._workers = [_Worker() for _ in range(self.threads - 1)]
            self._pid = os.getpid()

    def run(self, tasks) -> None:
        if len(tasks) == 1 or not self._busy.acquire(blocking=False):
            for task in tasks:  # another thread holds the pool: no waiting on it
                task()
            return
        try:
            self._ensure()
            started = self._workers[:len(tasks) - 1]
            for worker, task in zip(started, tasks[1:]):
                worker.start(task)
            error = None
            try:
                for task in [tasks[0], *tasks[1 + len(started):]]:  # more tasks than workers
                    task()
            except BaseException as e:
                error = e
            for worker in started:  # always wait: a worker may still write our arrays
                e = worker.wait()
                error = error or e
            if error is not None:
                raise error
        finally:
            self._busy.release()


class Side:
    """One task on the pool's first worker while the caller goes on (runtime/overlap.py:
    a stage's side node beside its window). ``start`` takes the pool (calls split into
    pieces meanwhile run their pieces one after the other in the caller: the other core is
    busy) and sets BLAS to one thread; ``join`` waits, gives both back and re-raises the
    task's error. A pool another thread is using runs the task in the caller at once."""

    def __init__(self, threads: int):
        self.pool = pool(threads)
        self._worker: _Worker | None = None
        self._blas: int | None = None

    def start(self, task) -> None:
        p = self.pool
        if self._worker is not None:
            raise RuntimeError("a side task is already running")
        if p.threads < 2 or not p._busy.acquire(blocking=False):
            task()
            return
        try:
            p._ensure()
            self._blas = blas.set_threads(1)
            worker = p._workers[0]
            worker.start(task)
        except BaseException:
            self._give_back()
            raise
        self._worker = worker

    def join(self) -> None:
        worker, self._worker = self._worker, None
        if worker is None:
            return
        try:
            error = worker.wait()
        finally:
            self._give_back()
        if error is not None:
            raise error

    def _give_back(self) -> None:
        if self._blas is not None and self._blas != 1:
            blas.set_threads(self._blas)
        self._blas = None
        self.pool._busy.release()


_POOLS: dict[int, Pool] = {}
_POOLS_LOCK = threading.Lock()


def pool(threads: int) -> Pool:
    """The process's pool of ``threads`` threads (the caller's and threads - 1 workers)."""
    with _POOLS_LOCK:
        if threads not in _POOLS:
            _POOLS[threads] = Pool(threads)
        return _POOLS[threads]


def ranges(count: int, parts: int, weights=None) -> list[tuple[int, int]]:
    """``parts`` contiguous ranges covering ``range(count)``, balanced by ``weights`` (one per
    item; default equal), none empty (fewer ranges when count < parts)."""
    parts = max(1, min(parts, count))
    if weights is None:
        return [(count * p // parts, count * (p + 1) // parts) for p in range(parts)]
    total = float(sum(weights))
    bounds, acc, p = [0], 0.0, 1
    for i, w in enumerate(weights):
        acc += w
        if p < parts and acc >= total * p / parts and i + 1 < count:
            bounds.append(i + 1)
            p += 1
    bounds.append(count)
    return list(itertools.pairwise(bounds))


class Parallel:
    """What a split call runs in: ``run(fn, count)`` calls ``fn(part, lo, hi)`` on contiguous
    ranges of ``range(count)`` at once (part 0 in the caller), with one BLAS thread per
    part (two BLAS pools on two cores fight: a second BLAS thread per part only slows
    them); ``scratch(part, size, dtype)`` is a flat array private to part >= 1 (part 0
    uses the kernel's planned workspace), grown on first use and then reused."""

    def __init__(self, threads: int):
        self.parts = int(threads)
        self.pool = pool(self.parts)
        self._spare: list[np.ndarray] = [np.empty(0, np.uint8) for _ in range(self.parts)]

    def run(self, fn, count: int, weights=None) -> None:
        spans = ranges(count, self.parts, weights)
        if len(spans) == 1:
            fn(0, 0, count)
            return
        self.run_tasks([lambda p=p, lo=lo, hi=hi: fn(p, lo, hi)
                        for p, (lo, hi) in enumerate(spans)])

    def run_tasks(self, tasks) -> None:
        """Run prepared zero-argument tasks at once, BLAS at one thread meanwhile."""
        before = blas.set_threads(1)
        try:
            self.pool.run(tasks)
        finally:
            if before is not None and before != 1:
                blas.set_threads(before)

    def reserve(self, part: int, nbytes: int) -> None:
        """Grow part ``part``'s spare buffer to at least ``nbytes`` (at build)."""
        if self._spare[part].nbytes < nbytes:
            self._spare[part] = np.empty(nbytes, np.uint8)

    def spare(self, part: int, nbytes: int) -> np.ndarray:
        """The first ``nbytes`` of part ``part``'s spare buffer (grown if needed)."""
        self.reserve(part, nbytes)
        return self._spare[part][:nbytes]

    def scratch(self, part: int, size: int, dtype) -> np.ndarray:
        dtype = np.dtype(dtype)
        return self.spare(part, size * dtype.itemsize).view(dtype)
