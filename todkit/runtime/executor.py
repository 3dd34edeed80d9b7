"""One execution plan: a node list, its memory plan, and its kernels bound to arrays.

``Executor`` is made once per mode at build (train: every node; eval: the inference nodes).
``plan`` computes lifetimes in execution order and places every non-constant value and every
kernel workspace in the arena; ``bind`` cuts the views out of the shared arena and pre-binds
each kernel to its input and output arrays (plus its workspace arrays), so ``invoke`` is a
plain loop with no lookups or allocation per node. Outputs an op declares as ``alias`` of an
input, and outputs of a node repeating an earlier node's computation (``find_duplicates``),
are bound as (reshaped) views: no bytes, no copy, no kernel call.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import OpExecuteError, TodkitError
from todkit.ir.graph import Node, Value
from todkit.opset.registry import WORKSPACE_FILLED, WORKSPACE_PRIVATE, get_op
from todkit.opset.runctx import RunContext
from todkit.runtime.planner import DEFAULT_ALIGNMENT, ArenaPlan, Buffer, plan_arena
from todkit.runtime.workers import Side


def arena_view(arena: np.ndarray, offset: int, value: Value) -> np.ndarray:
    """The typed, shaped window of ``arena`` that holds ``value``."""
    t = value.type
    return arena[offset:offset + t.nbytes].view(t.dtype.np).reshape(t.shape)


def lifetimes(nodes: list[Node], pinned: set[int], keep_alive: list[Value],
              aliases: dict[int, Value] | None = None,
              spans: dict[int, tuple[int, int]] | None = None) -> list[tuple]:
    """``(value, first, last)`` for every non-constant value the nodes produce.

    A value is live from its producer's step through its last reader's step inclusive; values
    in ``keep_alive`` (outputs read after the step) live to the end. Values in ``pinned`` (the
    graph inputs, placed by the caller) are skipped. A value in ``aliases`` (id -> the value
    whose bytes it views) gets no buffer: its readers keep that root value alive instead.
    ``spans``: step -> (first, last) steps during which that node runs (a side node runs
    through its window, runtime/overlap.py): its outputs live from the first, its inputs
    to the last.
    """
    aliases = aliases or {}
    spans = spans or {}
    n_steps = len(nodes)
    first: dict[int, int] = {}
    last: dict[int, int] = {}
    values: dict[int, Value] = {}

    def root(v: Value) -> int:
        return id(aliases[id(v)]) if id(v) in aliases else id(v)

    for step, node in enumerate(nodes):
        lo, hi = spans.get(step, (step, step))
        for v in node.inputs:
            r = root(v)
            if r in first:
                last[r] = max(last[r], hi)
        for v in node.outputs:
            if id(v) in aliases:  # a view is live from its node's step, as its root
                r = root(v)
                if r in first:
                    last[r] = max(last[r], hi)
                continue
            values[id(v)] = v
            first[id(v)], last[id(v)] = lo, hi
    for v in keep_alive:
        r = root(v)
        if r in last:
            last[r] = n_steps - 1
    return [(values[k], first[k], last[k]) for k in first if k not in pinned]


def _no_kernel(ins, outs, attrs, rt):
    """A node whose outputs are all views of its inputs: nothing to compute."""


def _run_all(fns, outs, attrs, rt):
    """A call made of functions of no arguments (``Executor.set_after``)."""
    for fn in fns:
        fn()


# Ops that draw from the run context's random generator (never merged or skipped).
RANDOM_OPS = frozenset({"Dropout", "DropoutGenMask", "DropoutDoMask", "UniformReal",
                        "StandardNormal", "RandomChoiceWithMask"})
_PLAIN = (bool, int, float, str, type(None))


def _attrs_key(attrs: dict):
    """A hashable form of plain attributes (numbers, strings, tuples of them), else None."""
    items = []
    for k, v in sorted(attrs.items()):
        if isinstance(v, (tuple, list)) and all(isinstance(e, _PLAIN) for e in v):
            v = tuple(v)
        elif not isinstance(v, _PLAIN):
            return None
        items.append((k, v))
    return tuple(items)


def find_duplicates(nodes: list[Node]) -> dict[int, Value]:
    """Outputs of a node that computes exactly what an earlier node computes (same op, the
    same input values, equal plain attributes; no side effect, in-place update, random draw
    or workspace sharing): id(output) -> the earlier node's output. The converter leaves
    such repeats: one NCHW->NHWC Transpose of an Inception block's Concat per branch (18 in
    GoogleNet). Bound as views of the first: no bytes, no kernel call."""
    mutated = {id(n.inputs[k]) for n in nodes for k in get_op(n.op).mutated(n.attrs)
               if k < len(n.inputs)}
    seen: dict[tuple, Node] = {}
    dups: dict[int, Value] = {}
    for node in nodes:
        opdef = get_op(node.op)
        if (opdef.side_effect or opdef.mutated(node.attrs) or opdef.workspace_key or opdef.alias
                or node.op in RANDOM_OPS or not node.outputs
                or any(id(v) in mutated for v in node.outputs + node.inputs)):
            continue
        attrs = _attrs_key(node.attrs)
        if attrs is None:
            continue
        key = (node.op, tuple(id(v) for v in node.inputs), attrs)
        first = seen.setdefault(key, node)
        if first is node:
            continue
        for v, w in zip(node.outputs, first.outputs):
            if v.type == w.type:
                dups[id(v)] = dups.get(id(w), w)
    return dups


def find_aliases(nodes: list[Node], aliases: dict[int, Value] | None = None
                 ) -> dict[int, Value]:
    """Outputs bound as views of an input (the ops' ``alias``): id(output) -> the root value
    (not itself a view) whose bytes it shares. Only non-constant values of the same dtype and
    byte size, never one that a node updates in place (``mutates``). ``aliases``: views
    already decided (``find_duplicates``), extended in place."""
    mutated = {id(n.inputs[k]) for n in nodes for k in get_op(n.op).mutated(n.attrs)
               if k < len(n.inputs)}
    aliases = {} if aliases is None else aliases
    for node in nodes:
        for k, j in get_op(node.op).alias.items():
            if k >= len(node.outputs) or j >= len(node.inputs):
                continue
            out, src = node.outputs[k], node.inputs[j]
            if (src.is_const or out.type.dtype != src.type.dtype
                    or out.type.nbytes != src.type.nbytes
                    or id(src) in mutated or id(out) in mutated):
                continue
            aliases[id(out)] = aliases.get(id(src), src)
    return aliases


def find_inplace(nodes: list[Node], aliases: dict[int, Value], pinned,
                 keep_alive: list[Value], held: frozenset[int] = frozenset()) -> set[int]:
    """Outputs that take the buffer of an input read by no later node (the ops' ``inplace``):
    each is added to ``aliases`` (id(output) -> the root value whose bytes it reuses; views
    of the output are re-rooted there too) and its id returned: its kernel still runs. Only
    same-type non-constant values whose root is not pinned (graph inputs, fused gradient
    buffers), not read after the step, not read by a node running beside others (``held``:
    ids of the side nodes, whose inputs stay whole through their windows) and not updated
    in place by any node."""
    mutated = {id(n.inputs[k]) for n in nodes for k in get_op(n.op).mutated(n.attrs)
               if k < len(n.inputs)}

    def root(v: Value) -> Value:
        return aliases.get(id(v), v)

    # Last step reading each root's bytes (through any view of it).
    last: dict[int, int] = {}
    for step, node in enumerate(nodes):
        for v in node.inputs:
            last[id(root(v))] = step
    kept = {id(root(v)) for v in keep_alive}
    kept |= {id(root(v)) for n in nodes if id(n) in held for v in n.inputs}
    produced = {id(v) for n in nodes for v in n.outputs}  # not graph inputs: fed once, read
    found: set[int] = set()                                # by every step
    for step, node in enumerate(nodes):
        for k, j in get_op(node.op).inplace.items():
            if k >= len(node.outputs) or j >= len(node.inputs):
                continue
            out, src = node.outputs[k], node.inputs[j]
            r = root(src)
            if (id(r) not in produced or out.type != src.type or id(out) in aliases
                    or id(r) in pinned or id(out) in pinned or id(r) in kept
                    or {id(src), id(out), id(r)} & mutated or last.get(id(r)) != step):
                continue
            found.add(id(out))
            aliases[id(out)] = r
            for i, w in list(aliases.items()):  # views of the output now view the root
                if w is out:
                    aliases[i] = r
            last[id(r)] = max(step, last.pop(id(out), step))
            if id(out) in kept:
                kept.add(id(r))
    return found


class Executor:
    def __init__(self, name: str, nodes: list[Node], pinned: dict[int, np.ndarray],
                 keep_alive: list[Value], training: bool, base: int,
                 alignment: int = DEFAULT_ALIGNMENT, stages=(), threads: int = 1):
        self.name = name
        self.nodes = list(nodes)
        self.training = training
        self._pinned = pinned
        # Side nodes run on a worker through their windows (runtime/overlap.py): step ->
        # last window step; planned as running through it.
        self.stages: dict[int, int] = dict(stages)
        node_spans = {s: (s, e) for s, e in self.stages.items()}
        self._side = Side(threads) if self.stages else None
        held = frozenset(id(self.nodes[s]) for s in self.stages)
        self.aliases = find_aliases(self.nodes, find_duplicates(self.nodes))
        # In-place outputs are planned as views of the input they overwrite, but computed.
        self.inplace = find_inplace(self.nodes, self.aliases, pinned, keep_alive, held)
        lives = lifetimes(self.nodes, set(pinned), keep_alive, self.aliases,
                          node_spans)
        self._planned = [v for v, _, _ in lives]
        buffers = [Buffer(v.name, v.type.nbytes, a, b) for v, a, b in lives]
        # Kernel scratch (the ops' ``workspace``): live at its node's step only, or, when
        # several nodes declare the same ``workspace_key``, from the first to the last.
        self._workspaces: list[tuple[list[tuple[int, int]], object]] = []  # [(step, k)], type
        self.filled: dict[int, set[int]] = {}  # step -> workspaces already filled for it
        shared: dict[object, int] = {}
        spans: list[list[int]] = []
        self.private: set[int] = set()  # steps whose keyed workspaces no other node shares
        for step, _, types, keys in self._workspace_keys():
            lo, hi = step, self.stages.get(step, step)
            for k, t in enumerate(types):
                key = (keys[k], t) if k in keys else None
                if key is not None and key in shared:
                    i = shared[key]
                    self._workspaces[i][0].append((step, k))
                    spans[i][1] = max(spans[i][1], hi)
                    self.filled.setdefault(step, set()).add(k)
                    continue
                if key is not None:
                    shared[key] = len(self._workspaces)
                self._workspaces.append(([(step, k)], t))
                spans.append([lo, hi])
        for (users, t), (a, b) in zip(self._workspaces, spans):
            step, k = users[0]
            buffers.append(Buffer(f"{self.nodes[step].name}/workspace:{k}", t.nbytes, a, b))
        self.plan: ArenaPlan = plan_arena(buffers, alignment, base)
        self.views: dict[int, np.ndarray] = {}
        self.bound: list[tuple] = []
        # What ``invoke`` runs: ``bound`` without the calls that do nothing (views) and with
        # fused groups (``set_fused``) in place of their members; ``_pos[step]`` is the
        # index in ``calls`` of the first call at or after node ``step``.
        self.calls: list[tuple] = []
        self._call_step: list[int] = []
        self._pos: list[int] = [0]
        self._fused: dict[int, tuple | None] = {}
        self._rt_box: list = [None]  # the run context a started side node reads
        self._after: dict[int, list] = {}  # step -> functions run right after its call

    def _workspace_keys(self):
        """(step, node, workspace types, {k: key}) per node; a node none of whose keyed
        workspaces another node shares is asked again with ``WORKSPACE_PRIVATE`` (it may
        then declare less) and has no keys."""
        found, users = [], {}
        for step, node in enumerate(self.nodes):
            opdef = get_op(node.op)
            types = opdef.workspace_types([v.type for v in node.inputs], node.attrs)
            keys = opdef.workspace_key(node) if opdef.workspace_key and types else {}
            found.append((step, node, types, keys))
            for k, key in keys.items():
                users[(key, types[k])] = users.get((key, types[k]), 0) + 1
        for i, (step, node, types, keys) in enumerate(found):
            if keys and all(users[(key, types[k])] == 1 for k, key in keys.items()):
                self.private.add(step)
                attrs = {**node.attrs, WORKSPACE_PRIVATE: True}
                found[i] = (step, node, get_op(node.op).workspace_types(
                    [v.type for v in node.inputs], attrs), {})
        return found

    def bind(self, arena: np.ndarray) -> None:
        """Cut this plan's views out of ``arena`` and pre-bind every kernel (once, at build)."""
        views = dict(self._pinned)
        n = len(self._planned)
        for v, off in zip(self._planned, self.plan.offsets[:n]):
            views[id(v)] = arena_view(arena, off, v)
        scratch: dict[int, dict[int, np.ndarray]] = {}
        for (users, t), off in zip(self._workspaces, self.plan.offsets[n:]):
            arr = arena[off:off + t.nbytes].view(t.dtype.np).reshape(t.shape)
            for step, k in users:
                scratch.setdefault(step, {})[k] = arr
        bound = []
        for step, node in enumerate(self.nodes):
            for v in node.outputs:  # views of a root bound above (or pinned), reshaped
                if id(v) in self.aliases:
                    view = views[id(self.aliases[id(v)])].reshape(v.type.shape)
                    assert np.shares_memory(view, views[id(self.aliases[id(v)])])
                    views[id(v)] = view
            ins = [v.data if v.is_const else views[id(v)] for v in node.inputs]
            outs = [views[id(v)] for v in node.outputs]
            opdef = get_op(node.op)
            kernel = opdef.kernel
            if node.outputs and all(id(v) in self.aliases and id(v) not in self.inplace
                                    for v in node.outputs):
                kernel = _no_kernel
            ws = scratch.get(step, {})
            attrs = node.attrs
            if step in self.filled:
                attrs = {**attrs, WORKSPACE_FILLED: frozenset(self.filled[step])}
            if step in self.private:
                attrs = {**attrs, WORKSPACE_PRIVATE: True}
            bound.append((kernel, ins, outs + [ws[k] for k in range(len(ws))], attrs))
        self.views = views
        self.bound = bound
        self._fused = {}
        self.refresh()

    def set_after(self, after: dict[int, list]) -> None:
        """step -> functions of no arguments that ``invoke`` runs right after node
        ``step``'s call (after the fused call that covers it; a side node's in its task):
        the guard's early checks of the arrays the node writes."""
        self._after = {s: list(fns) for s, fns in after.items() if fns}
        self.refresh()

    def set_fused(self, fused: dict[int, tuple | None]) -> None:
        """step -> the call that replaces node ``step``'s kernel (None: no call). The
        per-node entries in ``bound`` stay (the traced loop and deferred updates use them)."""
        self._fused = dict(fused)
        self.refresh()

    def refresh(self) -> None:
        """Rebuild ``calls`` from ``bound`` (after an entry of ``bound`` changed): a side
        node's call starts it on the worker, and a join after its window's last call waits
        for it (``active_stages``)."""
        calls, call_step, pos = [], [], []
        joins: dict[int, list[int]] = {}
        active = self.active_stages()
        for step, entry in enumerate(self.bound):
            pos.append(len(calls))
            if step in self._fused:
                entry = self._fused[step]
            elif entry[0] is _no_kernel:
                entry = None
            after = self._after.get(step, ())
            if step in active:
                joins.setdefault(active[step], []).append(step)
                if entry is not None:
                    entry = self._start_entry(step, entry, after)
                    after = ()
            if entry is not None:
                calls.append(entry)
                call_step.append(step)
            if after:
                calls.append((_run_all, after, [], {}))
                call_step.append(step)
            for side in joins.pop(step, ()):
                calls.append((self._join, [], [], {}))
                call_step.append(side)
        pos.append(len(calls))
        self.calls, self._call_step, self._pos = calls, call_step, pos

    def active_stages(self) -> dict[int, int]:
        """The stages that run side by side: those whose side node is one call of its own
        and whose window no fused call crosses (a rewrite may have taken the side step or
        the steps after either end: such a stage runs in the caller, as planned for)."""
        if self._side is None:
            return {}
        n = len(self.bound)
        return {s: e for s, e in self.stages.items()
                if all(self._fused.get(k, 0) is not None for k in (s, s + 1, e + 1) if k < n)}

    def _start_entry(self, step: int, entry: tuple, after=()) -> tuple:
        kernel, ins, outs, attrs = entry
        side, rt_box = self._side, self._rt_box

        def task():
            kernel(ins, outs, attrs, rt_box[0])
            for fn in after:
                fn()

        def start(_ins, _outs, _attrs, rt):
            rt_box[0] = rt
            side.start(task)
        return start, ins, outs, attrs

    def _join(self, ins, outs, attrs, rt) -> None:
        self._side.join()

    def array(self, value: Value) -> np.ndarray:
        return value.data if value.is_const else self.views[id(value)]

    def invoke(self, rt: RunContext, start: int = 0, stop: int | None = None) -> None:
        """Run the bound kernels ``start`` to ``stop`` (default: all) in order."""
        rt.training = self.training
        pos = self._pos
        first = pos[start]
        last = pos[-1] if stop is None else pos[stop]
        calls = self.calls
        i = first
        try:
            for i in range(first, last):
                kernel, ins, outs, attrs = calls[i]
                kernel(ins, outs, attrs, rt)
        except BaseException as e:
            if self._side is not None:
                self._abandon_side()  # a started side node may still write our arrays
            if isinstance(e, TodkitError) or not isinstance(e, Exception):
                raise
            raise self._failure(self._call_step[i], e) from e

    def _abandon_side(self) -> None:
        try:
            self._side.join()
        except Exception:
            pass

    def invoke_traced(self, rt: RunContext, before, after, start: int = 0,
                      stop: int | None = None) -> None:
        """``invoke`` calling ``before(node, ins, outs)`` / ``after(node, ins, outs)`` around
        each kernel (Lite's kernel callbacks); a slower loop used only when asked for."""
        rt.training = self.training
        stop = len(self.bound) if stop is None else stop
        for step in range(start, stop):
            kernel, ins, outs, attrs = self.bound[step]
            node = self.nodes[step]
            if before is not None:
                before(node, ins, outs)
            try:
                kernel(ins, outs, attrs, rt)
            except TodkitError:
                raise
            except Exception as e:
                raise self._failure(step, e) from e
            if after is not None:
                after(node, ins, outs)

    def _failure(self, step: int, e: Exception) -> OpExecuteError:
        node = self.nodes[step]
        shapes = ", ".join(f"{a.dtype}{list(a.shape)}" for a in self.bound[step][1])
        return OpExecuteError(f"node {node.name!r} ({node.op}) failed on inputs [{shapes}]: "
                              f"{type(e).__name__}: {e}")
