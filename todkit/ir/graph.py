"""The one graph IR that the front end, the codecs, the converter and the runtime share.

A ``Graph`` is a list of ``Node``s in execution order (topological, and for ops with side
effects the order in which they must run). Edges are ``Value``s: a graph input, a constant
(a ``Value`` holding ``data``; ``param=True`` marks named state such as weights, optimizer
slots and hyper-parameters), or an output of a node. Values keep their users, as torch.fx
nodes do, so passes can rewrite edges without a search.

Ops are named with MindSpore's primitive names (``MatMul``, ``BiasAdd``, ``ReLU``...) and
their attributes live in ``Node.attrs`` even where a file format passes them as inputs; the
codecs translate (see ``todkit/formats``). Ops that write an input in place (optimizers,
``Assign``) say so in their op definition (``OpDef.mutates``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

from todkit.core import dtypes
from todkit.core.dtypes import DType


@dataclass(frozen=True)
class TensorType:
    shape: tuple[int, ...]
    dtype: DType

    def __post_init__(self):
        object.__setattr__(self, "shape", tuple(int(d) for d in self.shape))

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * self.dtype.itemsize

    def __repr__(self) -> str:
        return f"{self.dtype.name}{list(self.shape)}"


class Value:
    """A named edge of the graph."""

    __slots__ = ("data", "format", "index", "name", "param", "producer", "type", "users")

    def __init__(self, name: str, type: TensorType, producer: Node | None = None,
                 index: int = 0, data: np.ndarray | None = None, param: bool = False):
        self.name = name
        # Layout tag as a .ms file stores it (Tensor.format: "NCHW", "NHWC", "KHWC", ...);
        # kernels take their layout from op attributes, this only round-trips the file.
        self.format = "NCHW"
        self.type = type
        self.producer = producer
        self.index = index
        self.users: list[Node] = []
        self.data = data
        self.param = param

    @property
    def is_const(self) -> bool:
        return self.data is not None

    def __repr__(self) -> str:
        return f"%{self.name}:{self.type}"


class Node:
    __slots__ = ("attrs", "inputs", "name", "op", "outputs")

    def __init__(self, op: str, inputs: list[Value], attrs: dict[str, Any], name: str):
        self.op = op
        self.inputs = list(inputs)
        self.outputs: list[Value] = []
        self.attrs = dict(attrs)
        self.name = name

    def __repr__(self) -> str:
        ins = ", ".join(v.name for v in self.inputs)
        outs = ", ".join(v.name for v in self.outputs)
        return f"{outs} = {self.op}({ins}) {self.attrs} [{self.name}]"


class Graph:
    def __init__(self, name: str = "graph"):
        self.name = name
        self.inputs: list[Value] = []
        self.outputs: list[Value] = []
        self.nodes: list[Node] = []
        self.consts: list[Value] = []
        self.attrs: dict[str, Any] = {}
        self._names: set[str] = set()
        self._node_names: set[str] = set()
        self._scope_counts: dict[tuple[str, str], int] = {}

    # -- building ---------------------------------------------------------------------
    def unique_name(self, base: str) -> str:
        name, k = base, 0
        while name in self._names:
            k += 1
            name = f"{base}_{k}"
        return name

    def _claim(self, name: str) -> str:
        if name in self._names:
            raise ValueError(f"value name {name!r} is used twice in graph {self.name!r}")
        self._names.add(name)
        return name

    def add_input(self, name: str, type: TensorType) -> Value:
        v = Value(self._claim(name), type)
        self.inputs.append(v)
        return v

    def add_const(self, name: str, data, param: bool = False, dtype: DType | None = None,
                  unique: bool = False) -> Value:
        """A constant (``param=False``) or named state (``param=True``) holding ``data``."""
        arr = np.asarray(data, dtype=(dtype.np if dtype else None))
        if not arr.flags.c_contiguous or not arr.flags.writeable:
            arr = np.array(arr, order="C")
        t = TensorType(arr.shape, dtypes.from_numpy(arr.dtype))
        if unique:
            name = self.unique_name(name)
        v = Value(self._claim(name), t, data=arr, param=param)
        self.consts.append(v)
        return v

    def add_node(self, op: str, inputs: Iterable[Value], attrs: dict[str, Any],
                 out_types: list[TensorType], name: str | None = None,
                 out_names: list[str] | None = None) -> Node:
        """Append a node with the given output types (``todkit.opset.emit`` infers them)."""
        inputs = list(inputs)
        base, k = name or op, 0
        node_name = base
        while node_name in self._node_names:
            k += 1
            node_name = f"{base}_{k}"
        node = Node(op, inputs, attrs, node_name)
        self._node_names.add(node_name)
        for i, t in enumerate(out_types):
            if out_names is not None:
                vname = out_names[i]
            elif len(out_types) == 1:
                vname = node_name
            else:
                vname = f"{node_name}_o:{i}"
            node.outputs.append(Value(self._claim(self.unique_name(vname)), t, node, i))
        for v in inputs:
            v.users.append(node)
        self.nodes.append(node)
        return node

    def scoped_name(self, scope: str, op: str) -> str:
        """MindSpore's ``<scope>/<Op>-op<k>`` node name, k counting per scope and op."""
        k = self._scope_counts.get((scope, op), 0)
        while f"{scope}/{op}-op{k}" in self._node_names:
            k += 1
        self._scope_counts[(scope, op)] = k + 1
        return f"{scope}/{op}-op{k}" if scope else f"{op}-op{k}"

    # -- editing ----------------------------------------------------------------------
    def replace_uses(self, old: Value, new: Value) -> None:
        """Point every user of ``old`` (and graph outputs) at ``new``."""
        for user in old.users:
            user.inputs = [new if v is old else v for v in user.inputs]
            if user not in new.users:
                new.users.append(user)
        old.users = []
        self.outputs = [new if v is old else v for v in self.outputs]

    def remove_nodes(self, dead: Iterable[Node]) -> None:
        dead = set(map(id, dead))
        keep = []
        for n in self.nodes:
            if id(n) in dead:
                for v in n.inputs:
                    v.users = [u for u in v.users if u is not n]
                for v in n.outputs:
                    self._names.discard(v.name)
                self._node_names.discard(n.name)
            else:
                keep.append(n)
        self.nodes = keep

    def prune_consts(self) -> None:
        """Drop constants that no node reads and that are not graph outputs."""
        outs = set(map(id, self.outputs))
        dropped = [c for c in self.consts if not c.users and id(c) not in outs]
        for c in dropped:
            self._names.discard(c.name)
        self.consts = [c for c in self.consts if c.users or id(c) in outs]

    # -- queries ----------------------------------------------------------------------
    def values(self) -> Iterable[Value]:
        yield from self.inputs
        yield from self.consts
        for n in self.nodes:
            yield from n.outputs

    def value(self, name: str) -> Value:
        for v in self.values():
            if v.name == name:
                return v
        raise KeyError(name)

    def node(self, name: str) -> Node:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)

    def op_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for n in self.nodes:
            counts[n.op] = counts.get(n.op, 0) + 1
        return counts

    def __repr__(self) -> str:
        lines = [f"graph {self.name}("
                 + ", ".join(repr(v) for v in self.inputs) + ")"]
        for c in self.consts:
            lines.append(f"  const {c!r}{' param' if c.param else ''}")
        for n in self.nodes:
            lines.append(f"  {n!r}")
        lines.append("  return " + ", ".join(v.name for v in self.outputs))
        return "\n".join(lines)
