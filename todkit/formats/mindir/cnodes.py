"""The MINDIR file's CNode structure, kept beside the IR graph the reader makes.

The IR drops MindSpore's side-effect plumbing (Load, UpdateState, Depend, MakeTuple,
TupleGetItem) once it has used it to put in-place updates in order. MindSpore Lite's converter
keeps that plumbing in its ANF graph until late: its RemoveRedundantOpPass rewrites the
UpdateState chain into Depend/MakeTuple control edges, and its exporter writes the nodes in a
depth-first walk over data and control edges from the graph output. Reproducing that order
(``todkit.converter.export_order``) needs the file's structure, which the reader attaches to
the graph it returns (``record_of(graph)``). It is kept beside the graph rather than in
``graph.attrs`` so that the IR of a file stays what a round trip compares; a copy of the graph
or a graph built in memory has no record.

A reference to a node's input (``Ref``) is a tuple:
``("cnode", key)`` another CNode of the file (``key`` its output name), ``("monad", "")`` the
UMONAD/IOMONAD seed, ``("param", name)`` a parameter (its IR constant's name), ``("input",
name)`` a graph input, ``("value", name)`` a constant node.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from todkit.ir.graph import Graph

Ref = tuple[str, str]


@dataclass
class FileCNode:
    key: str                 # the file's output name for the node
    op: str                  # primitive name: plumbing (Load, UpdateState...) or a real op
    inputs: list[Ref]        # every input, in file order
    ir_node: str | None = None  # the IR node's name for a real op
    # per IR input of a real op: (file input position, tuple item or None, the IR node
    # that produced it when read, or the constant/input value's name)
    data_slots: list[tuple[int, int | None, str]] = field(default_factory=list)


@dataclass
class CNodeRecord:
    cnodes: dict[str, FileCNode] = field(default_factory=dict)  # file order
    outputs: list[Ref] = field(default_factory=list)


_RECORDS: weakref.WeakKeyDictionary[Graph, CNodeRecord] = weakref.WeakKeyDictionary()


def attach(graph: Graph, record: CNodeRecord) -> None:
    _RECORDS[graph] = record


def record_of(graph: Graph) -> CNodeRecord | None:
    """The CNode structure of the MINDIR ``graph`` was read from, if it was."""
    return _RECORDS.get(graph)
