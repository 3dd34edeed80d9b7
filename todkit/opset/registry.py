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
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from todkit.core.errors import InferShapeError, OpAttrError, OpNotFoundError

REQUIRED = object()


class OpDef:
    """Subclass and decorate with ``@op``; methods are used as plain functions."""

    name: str = ""
    attrs: dict[str, Any] = {}
    mutates: tuple[int, ...] = ()
    # Ops with a side effect are kept by dead-code removal even if nothing reads them.
    side_effect: bool = False
    infer: Callable = None  # type: ignore[assignment]
    kernel: Callable = None  # type: ignore[assignment]
    grad: Callable | None = None

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
    for fn in ("infer", "kernel", "grad"):
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
