"""The non-finite guard: a NaN or Inf loss or gradient never reaches the weights.

MindSpore Lite's mixed-precision path checks the gradients for overflow before the optimizer
runs and skips the update when they are not finite. Here the same check guards every train
step: the train plan runs the *compute* nodes (forward, loss, backward) first and the
*update* nodes (optimizers, Assign, the accumulate kernels standing in for optimizers) last,
so a bad step is detected before any state changes. Policies: ``"skip"`` (default: warn and
skip the update), ``"raise"`` (an error naming the tensor), ``"ignore"`` (no check).
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from todkit.core.errors import RET_ERROR, TodkitError
from todkit.ir.graph import Node, Value
from todkit.opset.registry import OPS

POLICIES = ("skip", "raise", "ignore")
_add_reduce = np.add.reduce
_dot = np.dot
_isfinite = np.isfinite
_count_nonzero = np.count_nonzero


# Tensors up to this size are checked by ``isfinite`` into a kept mask and a count (no
# FPU flags, so no errstate: W1 1.4 -> 0.8 us); larger ones by a dot with zeros (one BLAS
# pass: 65536 values 5.7 -> 4.0 us), which needs an errstate for inf * 0.
_MASKED_MAX = 1 << 15


def _finite_check(arr: np.ndarray):
    """A function of no arguments: True if ``arr`` holds no NaN or Inf (it may say False
    for finite values only where the slow check in ``_bad_tensor`` confirms)."""
    if arr.size == 1:  # the loss: read as a Python float, no NumPy call
        return lambda: math.isfinite(arr.item())
    if arr.size <= _MASKED_MAX:
        mask, size = np.empty(arr.shape, np.bool_), arr.size
        return lambda: _count_nonzero(_isfinite(arr, out=mask)) == size
    if arr.flags.c_contiguous and arr.dtype in (np.float32, np.float64):
        # Dot with zeros: 0 for any finite tensor (no overflow, no false alarm), NaN as
        # soon as one value is NaN or Inf.
        flat, zeros = arr.reshape(-1), np.zeros(arr.size, arr.dtype)
        return lambda: _dot(flat, zeros) == 0
    # A sum in the tensor's own dtype: non-finite if a NaN or Inf is anywhere; a finite
    # tensor whose sum overflows is told apart by the slow check.
    return lambda: math.isfinite(_add_reduce(arr, None))


class NonFiniteWarning(RuntimeWarning):
    """A train step met a NaN or Inf loss or gradient and its update was skipped."""


class NonFiniteError(TodkitError):
    code = RET_ERROR


def split_updates(nodes: list[Node]) -> tuple[list[Node], list[Node]] | None:
    """``(compute, updates)``: the nodes with in-place side effects whose outputs no other
    node reads, moved after everything else. None if moving them would change what a
    later compute node reads (then the guard can report but not skip)."""
    readers: dict[int, list[Node]] = {}
    for n in nodes:
        for v in n.inputs:
            readers.setdefault(id(v), []).append(n)
    deferred: set[int] = set()
    # Reverse order: an update may feed only other updates (Assign chains).
    for n in reversed(nodes):
        if not OPS[n.op].mutated(n.attrs):
            continue
        if all(id(r) in deferred for v in n.outputs for r in readers.get(id(v), [])):
            deferred.add(id(n))
    pos = {id(n): i for i, n in enumerate(nodes)}
    for n in nodes:
        if id(n) not in deferred:
            continue
        for k in OPS[n.op].mutated(n.attrs):
            for r in readers.get(id(n.inputs[k]), []):
                if id(r) not in deferred and pos[id(r)] > pos[id(n)]:
                    return None  # a compute node reads the state after this update
    compute = [n for n in nodes if id(n) not in deferred]
    return compute, [n for n in nodes if id(n) in deferred]


# Fewest watched bytes worth checking in two parts at two threads (the checks stream
# memory; a large dot already runs on BLAS's two threads): ResNet18's 43 MB of gradients
# (W6) 1.5 -> 1.1 ms as two parts, the seed MyNet's 6 MB (W3) 0.26 -> 0.35 ms.
MIN_SPLIT_BYTES = 1 << 24


def _halves(arrays: list[np.ndarray]) -> list[list[tuple[int, object]]]:
    """Two lists of ``(k, fast check)`` of about equal bytes covering ``arrays`` (k: the
    array's index): consecutive arrays, the one that straddles the middle (W3: one 6 MB
    gradient) cut there when it is contiguous."""
    total = sum(a.nbytes for a in arrays)
    parts: list[list] = [[], []]
    acc = 0
    for k, arr in enumerate(arrays):
        p = 0 if 2 * acc < total else 1
        cut = (total // 2 - acc) // max(1, arr.itemsize)
        if p == 0 and 2 * (acc + arr.nbytes) > total and 0 < cut < arr.size and \
                arr.flags.c_contiguous:
            flat = arr.reshape(-1)
            parts[0].append((k, _finite_check(flat[:cut])))
            parts[1].append((k, _finite_check(flat[cut:])))
        else:
            parts[p].append((k, _finite_check(arr)))
        acc += arr.nbytes
    return parts


class Guard:
    """Checks the watched arrays (loss outputs, gradients) between compute and update.
    ``par`` (a ``workers.Parallel`` of two or more threads): large sets of arrays are
    checked in two parts at once. ``early``: indices of watched arrays whose fast check
    the step runs as soon as they are written (``early_check``: ResNet18's gradients,
    read back from memory at the end of the step, 1.7 -> 1.3 ms at one thread)."""

    def __init__(self, policy: str, watched: list[tuple[Value, np.ndarray]], par=None,
                 early=()):
        if policy not in POLICIES:
            raise TodkitError(f"non-finite policy must be one of {POLICIES}, got {policy!r}")
        self.policy = policy
        self.watched = watched
        self._checks = [(v, arr, _finite_check(arr)) for v, arr in watched]
        self._early = sorted(set(early))
        self._late = [k for k in range(len(watched)) if k not in set(early)]
        # This step's answers of the early checks (None: not run since ``begin_step``).
        self._said: list[bool | None] = [None] * len(watched)
        self._par = None
        self._parts: list[list] = []
        late = [watched[k][1] for k in self._late]
        if par is not None and sum(arr.nbytes for arr in late) >= MIN_SPLIT_BYTES:
            self._parts = [[(self._late[i], f) for i, f in p] for p in _halves(late)]
            self._par = par if all(self._parts) else None
        # The dot and sum checks can set FPU flags (inf * 0, an overflowing finite sum).
        self._flags = any(arr.size > _MASKED_MAX for _, arr in watched)
        self.skipped_steps = 0
        self.can_skip = True  # False: updates are interleaved, the check runs after them
        self.last_report = ""

    def bad_tensor(self) -> Value | None:
        if not self._flags:
            return self._bad_tensor()
        with np.errstate(invalid="ignore", over="ignore"):  # what flags it is the NaN
            return self._bad_tensor()

    def early_check(self, k: int):
        """A function of no arguments running watched array ``k``'s fast check and keeping
        the answer for this step (the runtime calls it right after the array is written)."""
        _, arr, finite = self._checks[k]
        said = self._said
        if arr.size <= _MASKED_MAX:
            def check():
                said[k] = finite()
        else:
            def check():
                with np.errstate(invalid="ignore", over="ignore"):  # inf * 0 in the dot
                    said[k] = finite()
        return check

    def begin_step(self) -> None:
        """Forget the early answers of an earlier step (one that stopped half-way, or ran
        the traced loop, which makes no early checks): those arrays are checked again."""
        for k in self._early:
            self._said[k] = None

    def _bad_tensor(self) -> Value | None:
        if self._par is not None:
            flags = self._fast_in_parts()
        else:
            flags = [True] * len(self._checks)
            for k in self._late:
                flags[k] = self._checks[k][2]()
        for k in self._early:
            said = self._said[k]
            flags[k] = self._checks[k][2]() if said is None else said
        for ok, (v, arr, _) in zip(flags, self._checks):
            if ok or np.isfinite(arr).all():  # the slow check confirms a fast "no"
                continue
            if isinstance(v, list):  # a fused group's gradients in one buffer
                return self._bad_member(v, arr)
            return v
        return None

    def _fast_in_parts(self) -> list[bool]:
        """The fast checks of both parts at once, one flag per watched array in order (the
        caller then reports the same tensor as checking one by one would)."""
        ok = [True] * len(self._checks)

        def part(p):
            with np.errstate(invalid="ignore", over="ignore"):  # per thread
                for k, finite in self._parts[p]:
                    if not finite():
                        ok[k] = False
        self._par.run_tasks([lambda: part(0), lambda: part(1)])
        return ok

    @staticmethod
    def _bad_member(values: list[Value], flat: np.ndarray) -> Value:
        off = 0
        for v in values:
            n = v.type.size
            if not np.isfinite(flat[off:off + n]).all():
                return v
            off += n
        return values[0]

    def allows_update(self) -> bool:
        """False if the update must be skipped; raises under the "raise" policy."""
        if self.policy == "ignore":
            return True
        v = self.bad_tensor()
        if v is None:
            return True
        msg = f"non-finite values (NaN or Inf) in tensor {v.name!r}"
        if self.policy == "raise":
            raise NonFiniteError(f"{msg}; the weights were "
                                 f"{'not ' if self.can_skip else ''}updated", RET_ERROR)
        self.skipped_steps += 1
        self.last_report = (f"{msg}: train step skipped, weights unchanged" if self.can_skip
                            else f"{msg}: this graph updates state mid-step, so the update "
                                 "could not be skipped")
        warnings.warn(self.last_report, NonFiniteWarning, stacklevel=4)
        return False
