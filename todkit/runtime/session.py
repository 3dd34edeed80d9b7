"""The device runtime's session: load a graph, plan memory once, run train or eval steps.

Lifecycle as tflite-micro's interpreter: *load* (verify the graph, resolve every kernel,
report all missing ops at once), *prepare* (static shapes, roles of the nodes as MindSpore
Lite's TrainSession finds them, liveness and an arena plan per mode, views bound once),
*invoke* (a loop of pre-bound kernels). Weights and optimizer state are the graph's constant
arrays and are updated in place by the optimizer kernels; only activations, gradients and the
graph inputs live in the arena.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import (
    RET_ERROR,
    InferShapeError,
    OpExecuteError,
    OpNotFoundError,
    TodkitError,
)
from todkit.ir.graph import Graph, Node, Value
from todkit.opset.registry import OPS
from todkit.opset.runctx import RunContext
from todkit.opset.verify import verify
from todkit.runtime import blas
from todkit.runtime.executor import (
    RANDOM_OPS,
    Executor,
    arena_view,
    find_aliases,
    find_duplicates,
)
from todkit.runtime.fuse import plan_groups
from todkit.runtime.guard import Guard, split_updates
from todkit.runtime.overlap import side_schedule
from todkit.runtime.planner import DEFAULT_ALIGNMENT, align_up
from todkit.runtime.resize import reinfer
from todkit.runtime.rewrite import RewriteContext, apply_rewrites
from todkit.runtime.roles import (
    DEFAULT_LOSS_NAMES,
    GRAD_INPUT_INDEX,
    LR_INPUT_INDEX,
    OPTIMIZER_PARAM_INPUTS,
    TRAINABLE_INPUTS,
    find_roles,
)
from todkit.runtime.workers import Parallel


def load_graph(graph: Graph, where: str) -> Graph:
    """Verify ``graph`` and check that every op has a kernel and every shape is static."""
    verify(graph, where=where)
    no_kernel: dict[str, list[str]] = {}
    for n in graph.nodes:
        if OPS[n.op].kernel is None:
            no_kernel.setdefault(n.op, []).append(n.name)
    if no_kernel:
        listing = "; ".join(f"{op} (nodes: {', '.join(ns)})" for op, ns in no_kernel.items())
        raise OpNotFoundError(f"{where}: no kernel for ops: {listing}", no_kernel)
    dynamic = [v.name for v in graph.values() if any(d < 0 for d in v.type.shape)]
    if dynamic:
        raise InferShapeError(f"{where}: dynamic shapes are not supported (tensors "
                              f"{', '.join(dynamic[:10])})")
    return graph


def dead_nodes(nodes: list[Node], kept: list[Value]) -> set[int]:
    """ids of the nodes a step need not run: no side effect, nothing updated in place, no
    random draw (running or skipping one changes what the others draw), and no output that
    a running node reads or that is in ``kept`` (the values read after the step). Decided
    once at build; the graph itself (and so an export) keeps them. The converter leaves
    such nodes: the ``<weight>_post_perm`` Transposes of frozen weights (56 in GoogleNet's
    classifier-only step)."""
    needed = {id(v) for v in kept}
    dead: set[int] = set()
    for n in reversed(nodes):
        opdef = OPS[n.op]
        if (not opdef.side_effect and not opdef.mutated(n.attrs) and n.op not in RANDOM_OPS
                and n.outputs and not any(id(v) in needed for v in n.outputs)):
            dead.add(id(n))
            continue
        needed.update(id(v) for v in n.inputs)
    return dead


def _lite_int(x: float) -> int:
    """C++'s float -> int conversion (toward zero), as Lite's kernels take the momentum."""
    return int(x)


def _accumulate_kernel(ins, outs, attrs, rt):
    """Stands in for an optimizer in accumulate-gradients mode: grad_sum += grad."""
    np.add(outs[0], ins[0], out=outs[0])


def _skip_kernel(ins, outs, attrs, rt):
    """Stands in for a state update deferred to apply_gradients."""


class Session:
    """A loaded graph ready to run. ``Session(graph)`` is the runtime-level entry point."""

    def __init__(self, graph: Graph, loss_names=DEFAULT_LOSS_NAMES,
                 accumulate_gradients: bool = False, where: str | None = None, seed: int = 0,
                 alignment: int = DEFAULT_ALIGNMENT, nonfinite: str = "skip",
                 blas_threads: int | None = 1):
        self.where = where or f"graph {graph.name!r}"
        self.graph = load_graph(graph, self.where)
        self.loss_names = tuple(loss_names)
        self.roles = roles = find_roles(graph, self.loss_names)
        self.rt = RunContext(training=not roles.is_inference_model, seed=seed)
        self.accumulate_gradients = accumulate_gradients
        self.alignment = alignment
        self.nonfinite = nonfinite
        # BLAS threads while a step runs (todkit/runtime/blas.py); None: leave as configured.
        self.blas_threads = blas_threads
        self.train_mode = not roles.is_inference_model
        self._grad_sums: list[np.ndarray] = []
        self._optimizer_steps: list[tuple] = []
        self._state_updates: list[tuple[int, tuple]] = []
        self._virtual_batch = self._virtual_count = 0
        self._lr_before_virtual_batch = 0.0
        # id(BatchNorm node) -> the momentum its calls run with instead of the graph's (a
        # virtual batch's, setup_virtual_batch); the graph, and so every export, keeps its own.
        self._bn_momentum: dict[int, float] = {}
        self._prepare()
        if self.train is not None and accumulate_gradients:
            self._set_accumulating(True)

    def _prepare(self) -> None:
        """Plan the arena for the current shapes and bind every kernel (at build and resize)."""
        graph, roles, alignment = self.graph, self.roles, self.alignment
        # Graph inputs sit at fixed offsets before both plans, so data written to an input
        # survives a switch between train and eval mode.
        input_offsets, base = [], 0
        for v in graph.inputs:
            input_offsets.append(base)
            base = align_up(base + v.type.nbytes, alignment)
        self.input_offsets = input_offsets
        pinned: dict[int, np.ndarray] = {}  # filled below, once the arena exists

        self.train = None
        self.update_start = 0
        self.groups = []
        self.skipped_nodes: set[int] = set()  # ids of train nodes a step does not run
        self._deferred: list[Value] = []
        if not roles.is_inference_model:
            # Keep the eval outputs too, so predictions can be read after a train step, and
            # the computed inputs of optimizers (advanced beta powers, a computed lr), which
            # a deferred update (accumulated gradients, virtual batch) reads after the step.
            deferred = [v for n in roles.optimizers for k, v in enumerate(n.inputs)
                        if not v.is_const and k != GRAD_INPUT_INDEX[n.op]]
            kept = roles.eval_outputs + roles.train_outputs + list(graph.outputs) + deferred
            self.skipped_nodes = dead_nodes(roles.train_nodes, kept)
            live = [n for n in roles.train_nodes if id(n) not in self.skipped_nodes]
            split = split_updates(live)
            order = split[0] + split[1] if split else live
            if split:  # values a deferred state update reads in apply_gradients
                deferred += [v for n in split[1] for v in n.inputs if not v.is_const]
                # Small parameters of one optimizer type: one fused call (runtime/fuse.py);
                # their gradients are written straight into the group's flat buffer, which
                # sits at a fixed offset after the inputs (outside both plans).
                self.groups = plan_groups(
                    order, len(split[0]), roles.optimizers,
                    set(find_aliases(order, find_duplicates(order))),
                    {id(v) for v in graph.inputs})
                for grp in self.groups:
                    grp.offset = base
                    base = align_up(base + grp.nbytes, alignment)
                    pinned.update(dict.fromkeys(grp.grad_ids))  # placed once the arena exists
            self.update_start = len(split[0]) if split else len(order)
            kept = (roles.train_outputs + roles.eval_outputs + list(graph.outputs)
                    + deferred)
            stages: list = []
            if (self.blas_threads or 1) == 2:  # weight gradients beside the backward chain
                order, stages = side_schedule(order, self.update_start, lambda o, st: Executor(
                    "train", o, pinned, kept, True, base, alignment, st).plan.total)
            self.train = Executor("train", order, pinned, kept, training=True, base=base,
                                  alignment=alignment, stages=stages,
                                  threads=self.blas_threads or 1)
            self._deferred = deferred
        self.eval = Executor("eval", roles.inference_nodes, pinned, roles.eval_outputs,
                             training=False, base=base, alignment=alignment)
        size = max(base, self.eval.plan.total, self.train.plan.total if self.train else 0)
        self.arena = np.zeros(size, dtype=np.uint8)
        for v, off in zip(graph.inputs, input_offsets):
            pinned[id(v)] = arena_view(self.arena, off, v)
        for grp in self.groups:
            pinned.update(grp.place(self.arena))
        for ex in self.executors:
            ex.bind(self.arena)
        self.guard = None
        if self.train is not None:
            watched = [v for v in roles.train_outputs if v.type.dtype.np.kind == "f"]
            grouped = {id(v) for grp in self.groups for v in grp.grad_values()}
            watched += [n.inputs[GRAD_INPUT_INDEX[n.op]] for n in roles.optimizers
                        if id(n.inputs[GRAD_INPUT_INDEX[n.op]]) not in grouped]
            pairs = [(v, self.train.array(v)) for v in watched]
            # A group's gradients are one buffer: one check (naming the bad member).
            pairs += [(grp.grad_values(), grp.grad) for grp in self.groups]
            threads = self.blas_threads or 1
            # (no early checks where nothing is checked)
            early = self._early_checks(watched, pinned) if self.nonfinite != "ignore" else {}
            self.guard = Guard(self.nonfinite, pairs,
                               Parallel(threads) if threads > 1 else None, early)
            after: dict[int, list] = {}
            for k, step in early.items():
                after.setdefault(step, []).append(self.guard.early_check(k))
            self.train.set_after(after)
            # Updates interleaved with compute: the guard can only check after the step.
            self.guard.can_skip = self.update_start < len(self.train.nodes)
        self._refresh_calls()

    def _early_checks(self, watched: list[Value], pinned) -> dict[int, int]:
        """{index in ``watched``: compute step writing it} for the gradients the guard
        checks as soon as they are made, in cache: each one a planned value (not a
        group's buffer) that one compute node writes and nothing after it rewrites (a
        value is live, so unshared, until the updates read it)."""
        ex = self.train
        written: dict[int, int] = {}  # root id -> last compute step writing its bytes
        for step, n in enumerate(ex.nodes[:self.update_start]):
            for v in n.outputs:
                if id(v) not in ex.aliases:
                    written[id(v)] = step
                elif id(v) in ex.inplace:  # computed into its root's bytes
                    written[id(ex.aliases[id(v)])] = step
        mutated = {id(ex.aliases.get(id(n.inputs[k]), n.inputs[k])) for n in ex.nodes
                   for k in OPS[n.op].mutated(n.attrs) if k < len(n.inputs)}
        early = {}
        for k, v in enumerate(watched):
            root = ex.aliases.get(id(v), v)
            step = written.get(id(root))
            if (step is None or id(root) in pinned or id(root) in mutated
                    or root.type.size <= 1):
                continue
            early[k] = step
        return early

    def _refresh_calls(self) -> None:
        """Put each group's fused call in the train loop, or, while its members' bound
        kernels are not their optimizers' own (accumulate mode), leave them as bound; then
        the build-time call rewrites (runtime/rewrite.py) on both executors."""
        outside = {id(v) for v in self.roles.train_outputs + self.roles.eval_outputs
                   + list(self.graph.outputs) + self._deferred}
        self._apply_bn_momentum()
        # Threads of a step: more than one lets rewrite_parallel split large calls.
        threads = self.blas_threads or 1
        self.eval.set_fused(apply_rewrites(self.eval, RewriteContext(
            outside, len(self.eval.nodes), threads=threads)))
        ex = self.train
        if ex is None:
            return
        fused = self._group_calls(ex)
        fused.update(apply_rewrites(ex, RewriteContext(outside, self.update_start,
                                                       set(fused), threads=threads)))
        ex.set_fused(fused)

    def _group_calls(self, ex) -> dict[int, tuple | None]:
        """step -> fused optimizer group call (None for the group's other members)."""
        fused: dict[int, tuple | None] = {}
        if not self.groups:
            return fused
        pos = {id(n): i for i, n in enumerate(ex.nodes)}
        read = {id(v) for n in ex.nodes for v in n.inputs}
        read |= {id(v) for v in self.roles.train_outputs + self.roles.eval_outputs
                 + list(self.graph.outputs)}
        for grp in self.groups:
            steps = [pos[id(n)] for n in grp.members]
            if any(ex.bound[i][0] is not OPS[grp.op].kernel for i in steps):
                continue
            first = ex.bound[steps[0]]
            if any(ex.bound[i][1][k] is not first[1][k] for i in steps for k in grp.shared):
                continue  # scalars pinned apart
            needed = [ex.bound[i][2][0] for i, n in zip(steps, grp.members)
                      if id(n.outputs[0]) in read]
            fused[steps[0]] = grp.entry(first[1], first[3], needed)
            for i in steps[1:]:
                fused[i] = None
        return fused

    # -- structure ----------------------------------------------------------------------
    @property
    def executors(self) -> list[Executor]:
        return [ex for ex in (self.train, self.eval) if ex is not None]

    @property
    def current(self) -> Executor:
        return self.train if self.train_mode else self.eval

    @property
    def inputs(self) -> list[Value]:
        return list(self.graph.inputs)

    def outputs(self, train_mode: bool | None = None) -> list[Value]:
        train_mode = self.train_mode if train_mode is None else train_mode
        return list(self.roles.train_outputs if train_mode else self.roles.eval_outputs)

    def array(self, value: Value, executor: Executor | None = None) -> np.ndarray:
        """The array that holds ``value`` in ``executor``'s plan (default: current mode)."""
        return (executor or self.current).array(value)

    def describe_plans(self) -> str:
        lines = ["inputs (shared by both plans, live for the whole step):"]
        lines += [f"  {off:>10} {v.type.nbytes:>10} {'[all]':>11}  {v.name}"
                  for v, off in zip(self.graph.inputs, self.input_offsets)]
        lines += [ex.plan.describe(f"{ex.name} plan ({len(ex.nodes)} nodes)")
                  for ex in self.executors]
        lines.append(f"arena: {self.arena.nbytes} bytes")
        return "\n".join(lines)

    # -- modes and running ---------------------------------------------------------------
    def set_train_mode(self, train: bool) -> None:
        if train and self.train is None:
            raise TodkitError("This is inference model, return err in TrainSession: "
                              f"graph {self.graph.name!r} has no loss node (loss names "
                              "searched: " + ", ".join(self.loss_names) + ")", RET_ERROR)
        self.train_mode = bool(train)

    def run_step(self, before=None, after=None) -> bool:
        """Train mode: forward, backward, optimizer updates. Eval mode: inference nodes.
        ``before``/``after(node, ins, outs)`` are called around each kernel if given.
        Returns False if the non-finite guard skipped the update."""
        if self.blas_threads is None:
            return self._run_step(before, after)
        previous = blas.set_threads(self.blas_threads)
        try:
            return self._run_step(before, after)
        finally:
            if previous is not None and previous != self.blas_threads:
                blas.set_threads(previous)

    def _run_step(self, before, after) -> bool:
        ex = self.current
        run = ex.invoke if before is None and after is None else (
            lambda rt, start=0, stop=None: ex.invoke_traced(rt, before, after, start, stop))
        if not self.train_mode:
            run(self.rt)
            return True
        self.guard.begin_step()
        if self.guard.can_skip:
            run(self.rt, 0, self.update_start)
            if not self.guard.allows_update():
                return False
            run(self.rt, self.update_start)
        else:
            run(self.rt)
            if not self.guard.allows_update():
                return False
        if self._virtual_batch:
            self._virtual_count += 1
            if self._virtual_count == self._virtual_batch:
                self._virtual_count = 0
                self.apply_gradients()
        return True

    def run_eval(self, before=None, after=None) -> None:
        """Run the inference nodes without changing the mode (used by predict)."""
        previous = None if self.blas_threads is None else blas.set_threads(self.blas_threads)
        try:
            self._run_eval(before, after)
        finally:
            if previous is not None and previous != self.blas_threads:
                blas.set_threads(previous)

    def _run_eval(self, before, after) -> None:
        if before is None and after is None:
            self.eval.invoke(self.rt)
        else:
            self.eval.invoke_traced(self.rt, before, after)

    # -- resize ----------------------------------------------------------------------------
    def resize(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """New shapes for graph inputs (by name): infer every node again and re-plan. On an
        error (a constant or attribute that fixes the old batch size) nothing changes."""
        accumulating = bool(self._optimizer_steps)
        reinfer(self.graph, shapes, self.where)
        sums = self._grad_sums  # shaped like the parameters: a new batch size keeps them
        if accumulating:
            self._set_accumulating(False)
        self._prepare()
        if accumulating:
            self._set_accumulating(True)
            for new, old in zip(self._grad_sums, sums):
                new[...] = old

    # -- learning rate -------------------------------------------------------------------
    def _optimizer_inputs(self) -> list[tuple[Node, list]]:
        """(optimizer node, its bound input list) for every optimizer call the runtime makes."""
        if self.train is None:
            return []
        pos = {id(n): i for i, n in enumerate(self.train.nodes)}
        pairs = [(n, self.train.bound[pos[id(n)]][1]) for n in self.roles.optimizers]
        if self._optimizer_steps:  # accumulate mode: the real updates run from apply_gradients
            pairs = [(n, step[1]) for n, step in zip(self.roles.optimizers,
                                                     self._optimizer_steps)]
        return pairs

    def set_learning_rate(self, lr: float) -> None:
        """Set the lr of every optimizer; negative is an error (Lite returns RET_ERROR)."""
        if not lr >= 0:
            raise TodkitError(f"learning rate must be >= 0, got {lr}", RET_ERROR)
        pinned: dict[tuple, np.ndarray] = {}
        for node, ins in self._optimizer_inputs():
            k = LR_INPUT_INDEX[node.op]
            if node.inputs[k].is_const:
                node.inputs[k].data[...] = lr  # in place: every kernel and an export see it
            else:
                # A computed lr: pin this optimizer to a fixed value from now on, as Lite's
                # optimizer kernels keep their own lr_ once it is set (one array per shape,
                # so a fused group still sees one lr).
                key = (ins[k].shape, ins[k].dtype.str)
                if key not in pinned:
                    pinned[key] = np.full(ins[k].shape, lr, dtype=ins[k].dtype)
                ins[k] = pinned[key]
        if pinned:  # bound inputs were replaced: rebuild the calls made from them (a const
            self._refresh_calls()  # lr changed in place needs nothing: ~2 ms on W4)

    def get_learning_rate(self) -> float:
        """The first optimizer's lr; 0.0 without optimizers (as Lite)."""
        pairs = self._optimizer_inputs()
        if not pairs:
            return 0.0
        node, ins = pairs[0]
        return float(np.asarray(ins[LR_INPUT_INDEX[node.op]]).reshape(-1)[0])

    def _optimizer_consts(self, table) -> list[Value]:
        seen: dict[int, Value] = {}
        for n in self.roles.optimizers:
            for k in table[n.op]:
                v = n.inputs[k]
                if v.is_const:
                    seen.setdefault(id(v), v)
        return list(seen.values())

    def trainable_params(self) -> list[Value]:
        """Constant inputs of optimizers at their trainable indices (Lite's
        GetTrainableParams): weights, their optimizer slots, lr and momentum."""
        return self._optimizer_consts(TRAINABLE_INPUTS)

    def optimizer_params(self) -> list[Value]:
        """The optimizers' scalar float hyper-parameters (lr, momentum, betas, eps, powers)."""
        return [v for v in self._optimizer_consts(OPTIMIZER_PARAM_INPUTS)
                if v.data.size == 1 and v.data.dtype.kind == "f"]

    # -- accumulated gradients and virtual batches -----------------------------------------
    def _set_accumulating(self, on: bool) -> None:
        """On: each optimizer only adds its gradient to a grad_sum buffer (state, outside the
        arena) and ``apply_gradients`` runs the real updates on the sums. Off: as built."""
        if on == bool(self._optimizer_steps):
            return
        pos = {id(n): i for i, n in enumerate(self.train.nodes)}
        if not on:
            for n, step in zip(self.roles.optimizers, self._optimizer_steps):
                ins = list(step[1])
                ins[GRAD_INPUT_INDEX[n.op]] = self.train.array(n.inputs[GRAD_INPUT_INDEX[n.op]])
                self.train.bound[pos[id(n)]] = (step[0], ins, step[2], step[3])
            for i, entry in self._state_updates:
                self.train.bound[i] = entry
            self._grad_sums, self._optimizer_steps, self._state_updates = [], [], []
            self._refresh_calls()
            return
        # The other in-place updates of the update phase (Adam's beta-power Assigns) wait
        # for apply_gradients too, so N accumulated steps advance the optimizer state once,
        # as one step on an N times larger batch does (Lite runs them every step).
        optimizer_ids = {id(n) for n in self.roles.optimizers}
        self._state_updates = [(i, self.train.bound[i])
                               for i in range(self.update_start, len(self.train.nodes))
                               if id(self.train.nodes[i]) not in optimizer_ids]
        for i, (_, ins, outs, attrs) in self._state_updates:
            self.train.bound[i] = (_skip_kernel, ins, outs, attrs)
        for n in self.roles.optimizers:
            i = pos[id(n)]
            kernel, ins, outs, attrs = self.train.bound[i]
            g = GRAD_INPUT_INDEX[n.op]
            grad_sum = np.zeros(n.inputs[g].type.shape, n.inputs[g].type.dtype.np)
            step_ins = list(ins)
            step_ins[g] = grad_sum
            self._grad_sums.append(grad_sum)
            self._optimizer_steps.append((kernel, step_ins, outs, attrs))
            self.train.bound[i] = (_accumulate_kernel, [ins[g]], [grad_sum], attrs)
        self._refresh_calls()

    def gradients(self) -> list[tuple[Value, np.ndarray]]:
        """(gradient value, accumulated sum) per optimizer; empty unless accumulating."""
        return [(n.inputs[GRAD_INPUT_INDEX[n.op]], s)
                for n, s in zip(self.roles.optimizers, self._grad_sums)]

    def apply_gradients(self) -> None:
        """One optimizer update from the accumulated sums, which then restart from zero."""
        if not self._optimizer_steps:
            raise TodkitError("apply_gradients needs TrainCfg(accumulate_gradients=True) and "
                              "a train model", RET_ERROR)
        self.rt.training = True
        steps = [(self.train.nodes[i], entry) for i, entry in self._state_updates]
        steps += list(zip(self.roles.optimizers, self._optimizer_steps))
        for node, (kernel, ins, outs, attrs) in steps:
            try:
                kernel(ins, outs, attrs, self.rt)
            except Exception as e:
                raise OpExecuteError(f"node {node.name!r} ({node.op}) failed applying "
                                     f"gradients: {type(e).__name__}: {e}") from e
        for s in self._grad_sums:
            s[...] = 0

    def setup_virtual_batch(self, multiplier: int, lr: float = -1.0,
                            momentum: float = -1.0) -> None:
        """Lite's SetupVirtualBatch: sum gradients over ``multiplier`` steps, then update with
        ``lr`` (default: the current lr / multiplier); ``multiplier <= 1`` turns it off and
        restores the lr and the BatchNorm momenta. The trainable BatchNorms (those reading an
        optimizer's input) run meanwhile with ``momentum`` (default: theirs / multiplier) as
        MindSpore Lite 2.x sets it: through an ``int`` (``BatchnormCPUKernel::
        SetupVirtualBatch(int, int)``), so any momentum below 1 becomes 0 and the moving
        statistics hold still until the virtual batch is turned off."""
        if self.train is None or self.accumulate_gradients:
            raise TodkitError("setup_virtual_batch needs a train model without "
                              "accumulate_gradients", RET_ERROR)
        if multiplier <= 1:
            if self._virtual_batch:
                self._set_accumulating(False)
                self.set_learning_rate(self._lr_before_virtual_batch)
            self._virtual_batch = self._virtual_count = 0
            if self._bn_momentum:
                self._bn_momentum = {}
                self._refresh_calls()
            return
        if not self._virtual_batch:
            self._lr_before_virtual_batch = self.get_learning_rate()
        given = _lite_int(momentum)
        self._bn_momentum = {id(n): float(given if given >= 0
                                          else _lite_int(n.attrs["momentum"] / multiplier))
                             for n in self._trainable_batch_norms()}
        self._set_accumulating(True)
        self._refresh_calls()  # the momenta take effect (the above refreshes only on a switch)
        self._virtual_batch, self._virtual_count = int(multiplier), 0
        self.set_learning_rate(self._lr_before_virtual_batch / multiplier if lr < 0 else lr)

    def _trainable_batch_norms(self) -> list[Node]:
        """Lite's trainable BatchNorm kernels: BatchNorms of the train graph reading a tensor
        some optimizer reads (``TrainSession::CompileOptimizedKernels``)."""
        read = {id(v) for n in self.roles.optimizers for v in n.inputs}
        return [n for n in self.train.nodes
                if n.op == "BatchNorm" and any(id(v) in read for v in n.inputs)]

    def _apply_bn_momentum(self) -> None:
        """Bind every BatchNorm call with its virtual-batch momentum, or the graph's."""
        for ex in self.executors:
            for i, node in enumerate(ex.nodes):
                if node.op != "BatchNorm":
                    continue
                kernel, ins, outs, attrs = ex.bound[i]
                want = self._bn_momentum.get(id(node), node.attrs["momentum"])
                if attrs.get("momentum") != want:
                    ex.bound[i] = (kernel, ins, outs, {**attrs, "momentum": want})
