"""The op vocabulary: one ``OpDef`` per op, holding its attributes, shape rule, kernel and
gradient rule side by side (family files: math, nn, activation, shape, loss, optim, ...).

Conventions every op follows:
- ``attrs``: the attribute names with their defaults (``REQUIRED`` for none). Names and
  defaults are MindSpore's primitive attributes.
- ``infer(in_types, attrs) -> list[TensorType]``: the shape rule.
- ``kernel(ins, outs, attrs, rt)``: NumPy; reads ``ins`` and **writes into** the preallocated
  ``outs`` (arena views on the device), so a step allocates nothing it can plan ahead.
  ``rt`` is the run context (``rt.training``, ``rt.rng``). Ops listed in ``mutates`` also
  update those inputs in place (optimizers, Assign).
- ``grad(g, node, douts) -> list[Value | None]``: emits backward IR nodes through ``g``
  (``g.emit``, ``g.const``), one entry per input (None = no gradient). The autodiff driver
  checks the arity and sums gradients that reach a value twice.
- ``workspace(in_types, attrs) -> list[TensorType]`` (optional): scratch arrays the kernel
  needs, passed as extra ``outs`` after the real outputs. The device runtime plans them in
  its arena (live at the node's step only); the reference interpreter allocates them fresh.
  A kernel called with fewer ``outs`` (the front end's eager path) allocates its own.
- ``workspace_key(node) -> {k: key}`` (optional): workspace ``k`` holds a pure function of
  the node's inputs named by ``key`` (hashable; e.g. the im2col columns of one input under
  one window geometry). In one plan, nodes whose workspaces have equal keys and types share
  one buffer, live from the first of them to the last; the first fills it, the later ones
  are called with ``attrs[WORKSPACE_FILLED] = {k, ...}`` and read it instead of recomputing
  (Conv2DBackpropFilter reuses the forward Conv2D's columns). Without the runtime (the
  interpreter, the eager path) the key is ignored and every kernel fills its own. When no
  other node in the plan shares any of a node's keyed workspaces, the runtime asks for them
  again with ``attrs[WORKSPACE_PRIVATE] = True`` and calls the kernel with that attribute:
  an op may then declare less scratch and work through it in pieces (a frozen Conv2D's
  im2col columns in chunks: GoogleNet's first layer would otherwise hold 118 MB of them).
- ``alias = {k: j}`` (optional): output ``k`` may be a view of input ``j`` (same bytes, new
  shape: Reshape, Flatten, ExpandDims, Squeeze). The device runtime binds the output as a
  reshaped view of the input, extends the input's lifetime over the view's readers and does
  not call the kernel; the interpreter ignores it and calls the kernel (a copy).
- ``inplace = {k: j}`` (optional): the kernel is correct when output ``k`` is the very
  buffer of input ``j`` (element-wise work that reads each input element before it writes
  the output element in its place, and reads nothing of input ``j`` afterwards). Where input
  ``j`` is read by no later node, the device runtime gives output ``k`` its bytes (and still
  calls the kernel): a chain conv -> BatchNorm -> ReLU6 of a frozen backbone runs in one
  buffer. The interpreter ignores it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from todkit.core.errors import InferShapeError, OpAttrError, OpNotFoundError

REQUIRED = object()
# Key of the bound attributes telling a kernel which workspaces already hold their content.
WORKSPACE_FILLED = "_workspace_filled"
# Key of the attribute telling ``workspace`` and the kernel that no other node shares this
# node's keyed workspaces (see ``workspace_key``).
WORKSPACE_PRIVATE = "_workspace_private"


class OpDef:
    """Subclass and decorate with ``@op``; methods are used as plain functions."""

    name: str = ""
    attrs: dict[str, Any] = {}
    mutates: tuple[int, ...] = ()
    # Ops with a side effect are kept by dead-code removal even if nothing reads them.
    side_effect: bool = False
    # Output index -> input index it may alias (a view: no copy, no arena bytes of its own).
    alias: dict[int, int] = {}
    # Output index -> input index whose buffer it may take when that input dies here.
    inplace: dict[int, int] = {}
    infer: Callable = None  # type: ignore[assignment]
    kernel: Callable = None  # type: ignore[assignment]
    grad: Callable | None = None
    workspace: Callable | None = None  # (in_types, attrs) -> list[TensorType] of scratch
    workspace_key: Callable | None = None  # (node) -> {workspace index: hashable key}

    @classmethod
    def mutated(cls, attrs: dict[str, Any]) -> tuple[int, ...]:
        """The inputs a node with these attributes updates in place (default: ``mutates``;
        an op whose side effect depends on an attribute, such as BatchNorm's moving
        statistics in training only, overrides this)."""
        return cls.mutates

    @classmethod
    def complete_attrs(cls, attrs: dict[str, Any], where: str = "") -> dict[str, Any]:
        unknown = set(attrs) - set(cls.attrs)
        if unknown:
            raise OpAttrError(f"{where}: {cls.name} has no attribute(s) {sorted(unknown)}")
        out = {}
        for k, default in cls.attrs.items():
            if k in attrs:
                out[k] = attrs[k]
            elif default is REQUIRED:
                raise OpAttrError(f"{where}: {cls.name} needs attribute {k!r}")
            else:
                out[k] = default
        return out

    @classmethod
    def workspace_types(cls, in_types, attrs) -> list:
        """The scratch arrays this op's kernel takes after its outputs (none by default)."""
        return [] if cls.workspace is None else list(cls.workspace(in_types, attrs))

    @classmethod
    def infer_types(cls, in_types, attrs, where: str = ""):
        try:
            return list(cls.infer(in_types, attrs))
        except InferShapeError:
            raise
        except Exception as e:
            raise InferShapeError(f"{where}: {cls.name} cannot take inputs "
                                  f"{list(in_types)} with {attrs}: {e}") from e


OPS: dict[str, type[OpDef]] = {}


def op(cls: type[OpDef]) -> type[OpDef]:
    """Register an OpDef under its class name (or ``name``); the class keeps its name."""
    cls.name = cls.__dict__.get("name") or cls.__name__
    for fn in ("infer", "kernel", "grad", "workspace", "workspace_key"):
        f = cls.__dict__.get(fn)
        if f is not None and not isinstance(f, staticmethod):
            setattr(cls, fn, staticmethod(f))
    if cls.name in OPS:
        raise ValueError(f"op {cls.name} defined twice")
    OPS[cls.name] = cls
    return cls


def get_op(name: str) -> type[OpDef]:
    try:
        return OPS[name]
    except KeyError:
        raise OpNotFoundError(f"unsupported op {name}", {name: []}) from None
