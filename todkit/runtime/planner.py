"""The arena planner: place every planned tensor at a byte offset of one buffer.

A greedy first-fit by decreasing size, the way tflite-micro's GreedyMemoryPlanner works:
take the buffers largest first, and put each at the lowest offset where it does not collide
with an already placed buffer whose lifetime overlaps its own. Lifetimes are inclusive step
ranges ``[first, last]`` over the execution order, so a kernel's inputs and outputs (both live
at its step) never share bytes and a kernel can write its outputs while reading its inputs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

DEFAULT_ALIGNMENT = 64  # one cache line; every offset is a multiple of it


def align_up(n: int, alignment: int) -> int:
    return (n + alignment - 1) // alignment * alignment


@dataclass(frozen=True)
class Buffer:
    """One planned tensor: ``size`` bytes, live from step ``first`` through ``last``."""

    name: str
    size: int
    first: int
    last: int

    def lifetime_overlaps(self, other: Buffer) -> bool:
        return self.first <= other.last and other.first <= self.last


@dataclass
class ArenaPlan:
    buffers: list[Buffer]
    offsets: list[int]
    total: int  # bytes the arena needs (end of the highest placed buffer, aligned)
    alignment: int = DEFAULT_ALIGNMENT
    base: int = 0  # bytes before the planned region (reserved by the caller)
    index: dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.index = {b.name: i for i, b in enumerate(self.buffers)}

    @property
    def naive_total(self) -> int:
        """What one buffer per tensor would cost (no reuse), for comparison."""
        return self.base + sum(align_up(b.size, self.alignment) for b in self.buffers)

    def offset_of(self, name: str) -> int:
        return self.offsets[self.index[name]]

    def overlaps(self) -> list[tuple[str, str]]:
        """Pairs of buffers whose lifetimes overlap and whose bytes overlap (must be empty)."""
        bad = []
        spans = sorted(zip(self.offsets, self.buffers), key=lambda p: p[0])
        for i, (oa, a) in enumerate(spans):
            if a.size == 0:
                continue
            for ob, b in spans[i + 1:]:
                if ob >= oa + a.size:
                    break  # sorted by offset: nothing later starts inside a
                if b.size and a.lifetime_overlaps(b):
                    bad.append((a.name, b.name))
        return bad

    def describe(self, title: str = "arena plan") -> str:
        rows = sorted(zip(self.offsets, self.buffers), key=lambda p: (p[0], p[1].first))
        lines = [(f"{title}: {len(self.buffers)} tensors, total {self.total} bytes "
                 f"(naive sum {self.naive_total}, base {self.base}, align {self.alignment})"),
                 f"  {'offset':>10} {'size':>10} {'live':>11}  name"]
        for off, b in rows:
            lines.append(f"  {off:>10} {b.size:>10} {f'[{b.first},{b.last}]':>11}  {b.name}")
        return "\n".join(lines)


def plan_arena(buffers: list[Buffer], alignment: int = DEFAULT_ALIGNMENT,
               base: int = 0) -> ArenaPlan:
    """Greedy first-fit placement of ``buffers`` at or after byte ``base`` (aligned up).
    The placed buffers' lifetimes and byte ranges are kept in arrays, so finding the ones
    live with the next buffer is one vectorised test, not a Python loop over all of them
    (ResNet18's ~500 buffers: 38 -> ~5 ms a plan; the two-thread schedule plans ~20)."""
    base = align_up(base, alignment)
    order = sorted(range(len(buffers)), key=lambda i: (-buffers[i].size, buffers[i].first, i))
    offsets = [base] * len(buffers)
    n = len(buffers)
    firsts, lasts = np.empty(n, np.int64), np.empty(n, np.int64)
    starts, stops = np.empty(n, np.int64), np.empty(n, np.int64)
    k = 0  # placed buffers with bytes, in the arrays' first k slots
    end = base
    for i in order:
        b = buffers[i]
        size = align_up(b.size, alignment)
        if size == 0:
            continue
        # Buffers already placed that are live at the same time, lowest offset first.
        live = np.flatnonzero((firsts[:k] <= b.last) & (lasts[:k] >= b.first))
        candidate = base
        if live.size:
            rank = np.lexsort((stops[live], starts[live]))
            for start, stop in zip(starts[live[rank]].tolist(), stops[live[rank]].tolist()):
                if candidate + size <= start:
                    break  # fits in the gap before this rival
                candidate = max(candidate, stop)
        offsets[i] = candidate
        firsts[k], lasts[k], starts[k], stops[k] = b.first, b.last, candidate, candidate + size
        k += 1
        end = max(end, candidate + size)
    return ArenaPlan(list(buffers), offsets, align_up(end, alignment), alignment, base)
