"""MINDIR file -> IR graph.

Handles MindSpore 2.x exports (ops by ``REF::<Prim>:<n>`` into ``ModelProto.primitives``,
PRIMITIVE_FUNCTION attribute-inputs), the v1 form (attributes on the primitive), and our own
files. Plumbing is resolved, never turned into IR nodes: Load is the identity, Depend(v, dep)
is v, UpdateState and the UMONAD seed are the side-effect state, MakeTuple packs tensors for
AddN or control edges, TupleGetItem picks an output of a multi-output node. Constant nodes
stay lazy until a real op uses one as a tensor (then an IR constant named after the node) or
as an attribute-input (then folded into the op's attributes through the op table).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from todkit.core.errors import GraphFileError, NotSupportedError, OpNotFoundError, TodkitError
from todkit.formats.mindir.cnodes import CNodeRecord, FileCNode, Ref, attach
from todkit.formats.mindir.lowered import LOWERED, read_spec
from todkit.formats.mindir.optable import (
    ALIASES,
    PLUMBING,
    OpSpec,
    generic_spec,
    mutated_inputs,
)
from todkit.formats.mindir.schema import AttrType, load_model, parse_model, pb
from todkit.formats.mindir.values import (
    MONAD,
    decode,
    decode_abstract,
    element_count,
    scalar_array,
    tensor_dtype,
    tensor_to_numpy,
)
from todkit.ir.graph import Graph, Node, TensorType, Value
from todkit.opset import OPS, emit, verify

_IGNORED_PRIM_ATTRS = frozenset({"input_names", "output_names", "side_effect_mem",
                                 "side_effect_propagate", "shape"})


@dataclass
class _Const:
    """A Constant node not yet turned into anything."""
    node: Any  # pb.NodeProto


@dataclass
class _Load:
    """Load(param, U): the parameter as it was after ``version`` in-place updates."""
    value: Value
    version: int


@dataclass
class _Tuple:
    items: list


@dataclass
class _Multi:
    """A node whose file output is a tuple; TupleGetItem picks from ``node.outputs``."""
    node: Node


# A graph input bigger than this cannot be a model for a device (Lite caps a whole model
# buffer at 2 GB); refusing it here keeps the runtime from trying to allocate it.
MAX_INPUT_BYTES = 2**31 - 1


def read(path: str | os.PathLike) -> Graph:
    """Parse a .mindir into a verified IR graph; every failure is a TodkitError naming it."""
    path = os.fspath(path)
    return _guarded(path, lambda: load_model(path))


def read_bytes(data: bytes, where: str = "<buffer>") -> Graph:
    """``read`` of a MINDIR already in memory (the fuzz harness); ``where`` names it."""
    return _guarded(where, lambda: parse_model(data, where))


def _guarded(path: str, load) -> Graph:
    try:
        model = load()
        graph = _Reader(model, path).build()
        return verify(graph, where=path)
    except TodkitError:
        raise
    except Exception as e:  # a malformed file must not surface as a bare traceback
        raise GraphFileError(f"{path}: cannot read MINDIR: {type(e).__name__}: {e}") from e


class _Reader:
    def __init__(self, model: pb.ModelProto, path: str):
        self.path = path
        self.g = model.graph
        self.prefix = self.g.name + ":"
        self.prims = {p.name: p for p in model.primitives}
        self.graph = Graph(self.g.name or os.path.basename(path))
        self.env: dict[str, Any] = {}          # file value name -> what it resolved to
        self.consts: dict[int, Value] = {}     # id(Constant NodeProto) -> its IR constant
        self.versions: dict[int, int] = {}     # id(param Value) -> in-place updates so far
        # the file's CNode structure, for the converter's exporter order (cnodes.py)
        self.record = CNodeRecord()
        self.refs: dict[str, Ref] = {}         # file value name -> how the record refers to it

    # -- names -------------------------------------------------------------------------
    def short(self, name: str) -> str:
        return name.removeprefix(self.prefix)

    def node_name(self, n, op: str) -> str:
        return n.domain or self.graph.scoped_name("Default", op)

    def where(self, n) -> str:
        return f"{self.path}: node {n.domain or n.name!r}"

    def op_of(self, n) -> tuple[str, list]:
        """(op type, primitive attributes) of a node: through ``REF::`` into the primitives
        table (2.x, v1), or the node's own op_type and attributes (older files)."""
        if n.op_type.startswith("REF::"):
            key = n.op_type[len("REF::"):]
            prim = self.prims.get(key)
            if prim is None:
                raise GraphFileError(f"{self.where(n)} refers to primitive {key!r}, which "
                                     "is not in ModelProto.primitives")
            return prim.op_type, list(prim.attribute)
        return n.op_type, [a for a in n.attribute if a.name != "shape"]

    def named(self, what: str, make, *args, **kwargs):
        """``make(...)`` (which names a new IR value); a name the file uses twice is the
        file's fault, reported as such rather than as the IR's ValueError."""
        try:
            return make(*args, **kwargs)
        except ValueError as e:
            if "used twice" not in str(e):
                raise
            raise GraphFileError(f"{self.path}: {what}: {e}") from None

    # -- whole graph -------------------------------------------------------------------
    def build(self) -> Graph:
        self.check_ops()
        for p in self.g.parameter:
            name = p.ref_key or self.short(p.name)
            data = tensor_to_numpy(p, f"{self.path}: parameter {name!r}")
            self.env[p.name] = self.named(f"parameter {name!r}", self.graph.add_const, name,
                                          data, param=True)
            self.refs[p.name] = ("param", self.env[p.name].name)
        for vi in self.g.input:
            if vi.name in self.env:  # older exports list parameters as inputs too
                continue
            if not vi.tensor:
                raise NotSupportedError(f"{self.path}: graph input {vi.name!r} is not a tensor")
            t = vi.tensor[0]
            tt = TensorType(tuple(t.dims), tensor_dtype(t, f"{self.path}: input {vi.name!r}"))
            if any(d < 0 for d in tt.shape):
                raise NotSupportedError(f"{self.path}: graph input {vi.name!r} has a dynamic "
                                        f"shape {list(t.dims)}; only static shapes are supported")
            nbytes = element_count(tt.shape, self.path) * tt.dtype.itemsize
            if nbytes > MAX_INPUT_BYTES:
                raise GraphFileError(f"{self.path}: graph input {vi.name!r} of shape "
                                     f"{list(tt.shape)} would take {nbytes} bytes, over the "
                                     f"{MAX_INPUT_BYTES}-byte limit of a model tensor")
            self.env[vi.name] = self.named(f"graph input {vi.name!r}", self.graph.add_input,
                                           self.short(vi.name), tt)
            self.refs[vi.name] = ("input", self.env[vi.name].name)
        for n in self.g.node:
            self.visit(n)
        for vi in self.g.output:
            r = self.resolve(vi.name, "the graph output")
            items = r.items if isinstance(r, _Tuple) else \
                list(r.node.outputs) if isinstance(r, _Multi) else [r]
            for item in items:
                self.graph.outputs.append(self.tensor(item, "the graph output"))
            self.record.outputs.append(self.ref(vi.name))
        attach(self.graph, self.record)
        for a in self.g.attribute:
            if a.name == "training":
                self.graph.attrs["training"] = bool(decode(a, self.path))
        return self.graph

    def check_ops(self) -> None:
        """Every op the opset lacks, with the nodes using it, reported at once."""
        missing: dict[str, list[str]] = {}
        for n in self.g.node:
            if n.op_type == "Constant":
                continue
            op = self.op_of(n)[0]
            lowered = op in LOWERED
            if op not in PLUMBING and op not in OPS and not lowered:
                missing.setdefault(op, []).append(n.domain or self.short(n.name))
        if missing:
            listing = "; ".join(f"{op} (nodes: {', '.join(names)})"
                                for op, names in missing.items())
            raise OpNotFoundError(f"{self.path}: unsupported ops: {listing}", missing)

    # -- one node ----------------------------------------------------------------------
    def visit(self, n) -> None:
        out = n.output[0] if n.output else n.name
        if n.op_type == "Constant":
            value = next((a for a in n.attribute if a.name == "value"), None)
            monad = value is not None and value.type in (AttrType.UMONAD, AttrType.IOMONAD)
            self.env[out] = MONAD if monad else _Const(n)
            self.refs[out] = ("monad", "") if monad else ("value", out)
            return
        op, prim_attrs = self.op_of(n)
        self.refs[out] = ("cnode", out)
        self.record.cnodes[out] = FileCNode(out, op, [self.ref(i) for i in n.input])
        where = f"node {n.domain or n.name!r}"
        if op == "Load":
            v = self.resolve(n.input[0], where)
            if not isinstance(v, Value):
                raise GraphFileError(f"{self.where(n)}: Load of something not a parameter")
            self.env[out] = _Load(v, self.versions.get(id(v), 0))
        elif op == "UpdateState":
            self.env[out] = MONAD
        elif op == "Depend":
            self.env[out] = self.resolve(n.input[0], where)
        elif op == "MakeTuple":
            self.env[out] = _Tuple([self.resolve(x, where) for x in n.input])
        elif op == "TupleGetItem":
            self.env[out] = self.item(self.resolve(n.input[0], where),
                                      int(self.constant(self.resolve(n.input[1], where),
                                                        where, "index")), n)
        else:
            self.env[out] = self.real_op(n, op, prim_attrs, self.record.cnodes[out])

    def real_op(self, n, op: str, prim_attrs: list, cnode: FileCNode) -> Any:
        spec = read_spec(op) or generic_spec(op)
        name = self.node_name(n, op)
        where = f"node {name!r} ({op})"
        kept = [(k, x) for k, x in enumerate(self.resolve(i, where) for i in n.input)
                if x is not MONAD]
        ins = [x for _, x in kept]
        if spec.tuple_input:
            first = ins[0] if ins else _Tuple([])
            tensors, rest = (first.items if isinstance(first, _Tuple) else [first]), ins[1:]
        elif spec.inputs is None:
            tensors, rest = ins, []
        else:
            tensors, rest = ins[:spec.inputs], ins[spec.inputs:]
            if len(tensors) < spec.inputs:
                raise GraphFileError(f"{self.path}: {where} has {len(tensors)} tensor inputs, "
                                     f"{op} takes {spec.inputs}")
        if len(rest) > len(spec.attr_inputs):
            raise GraphFileError(f"{self.path}: {where} has {len(ins)} inputs, more than "
                                 f"{op} takes")
        attrs = self.primitive_attrs(spec, prim_attrs, where)
        for attr, x in zip(spec.attr_inputs, rest):
            attrs[attr.ir] = attr.read(self.constant(x, where, attr.ir))
        values = [self.tensor(x, where) for x in tensors]
        try:
            if spec.lower is not None:
                node = self.named(where, spec.lower, self.graph, values, attrs, name)
            else:
                node = self.named(where, emit, self.graph, op, values, attrs, name=name)
        except TodkitError as e:
            if str(e).startswith(self.path):
                raise
            raise type(e)(f"{self.path}: {e}") from None
        except (ValueError, NotImplementedError) as e:
            if spec.lower is None:
                raise
            # a lowering met a form of the op it does not take (its message says which)
            raise NotSupportedError(f"{self.path}: {where}: {e}") from None
        cnode.ir_node = node.name
        cnode.data_slots = self.data_slots(node, kept, spec.tuple_input)
        shape = next((a for a in n.attribute if a.name == "shape"), None)
        self.check_outputs(node, spec, shape)
        for i in mutated_inputs(spec, OPS[node.op], node.attrs):
            self.versions[id(node.inputs[i])] = self.versions.get(id(node.inputs[i]), 0) + 1
        file_tuple = shape is not None and shape.type == AttrType.TUPLE
        if spec.tuple_output or file_tuple or len(node.outputs) > 1:
            return _Multi(node)
        return node.outputs[0]

    @staticmethod
    def data_slots(node: Node, kept: list, tuple_input: bool) -> list:
        """Where each IR input of ``node`` came from in the file (``FileCNode.data_slots``)."""
        def origin(v: Value) -> str:
            return v.producer.name if v.producer is not None else v.name
        if tuple_input:
            pos, first = kept[0] if kept else (0, None)
            item = isinstance(first, _Tuple)
            return [(pos, j if item else None, origin(v)) for j, v in enumerate(node.inputs)]
        # A lowering's node may read more values than the file's node has inputs (Mish(x) read
        # as Mul(x, Tanh(Softplus(x)))): those come from nodes the lowering made, not from a
        # file input, and get no slot.
        return [(kept[j][0], None, origin(v)) for j, v in enumerate(node.inputs[:len(kept)])]

    def ref(self, name: str) -> Ref:
        return self.refs.get(name, ("value", name))

    def primitive_attrs(self, spec: OpSpec, prim_attrs: list, where: str) -> dict:
        raw = {a.name: a for a in prim_attrs if a.name not in _IGNORED_PRIM_ATTRS}
        for alias, name in ALIASES.items():
            if alias in raw and name not in raw:
                raw[name] = raw[alias]
        out: dict[str, Any] = {}
        if spec.generic:
            for k in OPS[spec.op].attrs:
                if k in raw:
                    out[k] = decode(raw[k], f"{self.path}: {where}")
            return out
        for attr in spec.all_attrs():
            a = raw.get(attr.file_name)
            if a is not None:
                out[attr.ir] = attr.read(decode(a, f"{self.path}: {where}"))
        return out

    def check_outputs(self, node: Node, spec: OpSpec, shape) -> None:
        """The file's ``shape`` abstract must agree with the op's shape rule."""
        if shape is None:
            return
        got = decode_abstract(shape, f"{self.path}: node {node.name!r}")
        if got is None:
            return
        want = spec.file_outputs(node) if spec.file_outputs else [v.type for v in node.outputs]
        if got != want:
            raise GraphFileError(f"{self.path}: node {node.name!r} ({node.op}): the file gives "
                                 f"its outputs as {got}, its shape rule as {want}")

    # -- resolving inputs --------------------------------------------------------------
    def resolve(self, name: str, where: str) -> Any:
        try:
            return self.env[name]
        except KeyError:
            raise GraphFileError(f"{self.path}: {where} uses {self.short(name)!r}, which is "
                                 "not defined before it") from None

    def item(self, t: Any, k: int, n) -> Any:
        if isinstance(t, _Multi):
            outs = t.node.outputs
            # Ops whose MINDIR tuple the IR reduces to one output (Adam) map every item to it.
            if len(outs) == 1:
                return outs[0]
            if not 0 <= k < len(outs):
                raise GraphFileError(f"{self.where(n)}: TupleGetItem {k} of {t.node.name!r}, "
                                     f"which has {len(outs)} outputs")
            return outs[k]
        if isinstance(t, _Tuple):
            return t.items[k]
        raise GraphFileError(f"{self.where(n)}: TupleGetItem of something not a tuple")

    def constant(self, x: Any, where: str, what: str) -> Any:
        """The Python value of an attribute-input."""
        if isinstance(x, _Const):
            value = next((a for a in x.node.attribute if a.name == "value"), None)
            if value is None:
                raise GraphFileError(f"{self.path}: Constant {x.node.name!r} has no value")
            return decode(value, f"{self.path}: Constant {x.node.name!r}")
        if isinstance(x, Value) and x.data is not None and not x.param:
            return x.data
        raise NotSupportedError(f"{self.path}: {where}: {what} is computed while the graph "
                                "runs; only constant values are supported there")

    def tensor(self, x: Any, where: str) -> Value:
        """An input used as a tensor: an IR value, materialising constants on first use."""
        if isinstance(x, Value):
            return x
        if isinstance(x, _Load):
            if self.versions.get(id(x.value), 0) != x.version:
                raise NotSupportedError(
                    f"{self.path}: {where} reads parameter {x.value.name!r} through a Load "
                    "taken before an in-place update of it that runs earlier in the node "
                    "list; the IR cannot hold the old value")
            return x.value
        if isinstance(x, _Const):
            return self.materialise(x)
        kind = {_Tuple: "a tuple", _Multi: "a tuple output"}.get(type(x), "the side-effect state")
        raise GraphFileError(f"{self.path}: {where} takes {kind} where a tensor is expected")

    def materialise(self, c: _Const) -> Value:
        done = self.consts.get(id(c.node))
        if done is not None:
            return done
        a = next((a for a in c.node.attribute if a.name == "value"), None)
        if a is None:
            raise GraphFileError(f"{self.path}: Constant {c.node.name!r} has no value")
        v = decode(a, f"{self.path}: Constant {c.node.name!r}")
        if isinstance(v, np.ndarray):
            data = v
        elif isinstance(v, tuple):
            data = np.array(v, dtype=np.int64)
        elif isinstance(v, (bool, int, float)):
            data = scalar_array(a, v)
        else:
            raise GraphFileError(f"{self.path}: Constant {c.node.name!r} ({v!r}) used as a tensor")
        value = self.graph.add_const(c.node.name or "const", data, unique=True)
        self.consts[id(c.node)] = value
        return value
