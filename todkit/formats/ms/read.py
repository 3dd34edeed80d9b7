"""`.ms` file -> IR graph (``read``), after the checks MindSpore Lite's loader makes.

Order of trust: ``fbread`` verifies the FlatBuffers structure; ``_check_model`` makes the
``ModelVerify`` checks (indices in range, one producer per tensor, no data on node outputs,
sub-graph indices valid) plus data size == prod(dims) * itemsize; only then is the IR built,
op by op through ``optable``, and checked with ``todkit.opset.verify``.

Shapes: node output types come from the ops' shape rules; the file's dims must agree, except
that [1] and [] (both one element) are taken as equal, because the real converter writes
scalar results such as the mean loss as [1]. (The writer writes scalar node outputs as [1]
for the same reason; constants and graph inputs keep their exact dims.)
"""

from __future__ import annotations

import math
import mmap
import os
import sys
import weakref
from dataclasses import dataclass, field

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import GraphFileError, InferShapeError, OpAttrError, OpNotFoundError
from todkit.formats.ms import fbread, optable, schema
from todkit.ir.graph import Graph, TensorType, Value
from todkit.opset import emit, verify

CONST_NAME_PREFIX = "Default/data-"  # the converter's name for unnamed constants


@dataclass
class MsModel:
    """A read `.ms` model: the IR graph plus what is needed to write the file back."""

    graph: Graph
    name: str | None
    version: str | None
    fmk_type: int
    subgraph_name: str | None
    # the original buffer, bytes or the file mapped by ``map_file`` (a train export that
    # only changed weights patches it)
    raw: bytes | mmap.mmap
    # IR value name -> index in MetaGraph.allTensors (constants, inputs and node outputs)
    tensor_index: dict[str, int] = field(default_factory=dict)
    # (node name, input index) -> name of the constant tensor folded into an attribute
    folded_inputs: dict[tuple[str, int], str] = field(default_factory=dict)


def _load(src) -> tuple[bytes, str]:
    if isinstance(src, MappedFile):
        return src, "<mapped file>"
    if isinstance(src, (bytes, bytearray, memoryview)):
        return bytes(src), "<buffer>"
    path = os.fspath(src)
    try:
        with open(path, "rb") as f:
            # Check the size before reading: nothing is allocated for a file Lite would refuse.
            size = os.fstat(f.fileno()).st_size
            if size > fbread.MAX_BUFFER:
                raise GraphFileError(f"{path}: invalid .ms file: {size} bytes exceeds the 2 GB "
                                     "limit")
            return f.read(), path
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read: {e.strerror or e}") from e


NEIGHBOURHOOD = 2 << 20


class MappedFile(mmap.mmap):
    """A model file mapped read-only, with its own descriptor: the tables are decoded from
    the mapping, tensor data is read with ``pread`` straight into its array.

    A clean file page counts in the process's resident memory while mapped, and the kernel
    maps whole neighbourhoods of a faulting page (page-cache folios, fault-around), so
    copying weights out of the mapping would peak at the file plus its weights; read this
    way, loading a 90 MB ResNet18 train model peaks at its weights plus a tensor.
    """

    def __new__(cls, f):
        self = super().__new__(cls, f.fileno(), 0, access=mmap.ACCESS_READ)
        self.fd = os.dup(f.fileno())
        weakref.finalize(self, os.close, self.fd)
        return self

    def read_into(self, arr: np.ndarray, offset: int) -> None:
        view = memoryview(arr).cast("B")
        done = 0
        while done < view.nbytes:
            n = os.preadv(self.fd, [view[done:]], offset + done)
            if n <= 0:
                raise GraphFileError(f"file ended at byte {offset + done} while reading "
                                     "tensor data (changed while loading?)")
            done += n

    def drop_pages(self, start: int = 0, stop: int | None = None) -> None:
        """Unmap the pages of bytes ``start:stop`` that reading faulted in (they stay in the
        page cache)."""
        page = mmap.PAGESIZE
        first = start // page * page
        stop = len(self) if stop is None else min(stop, len(self))
        if stop > first:
            self.madvise(mmap.MADV_DONTNEED, first, stop - first)


def map_file(src) -> MappedFile | bytes:
    """A .ms file (a path, or a file opened for binary reading) mapped for ``read``; an
    empty file gives its empty bytes (which ``read`` refuses with the file's name)."""
    if hasattr(src, "fileno"):
        return _map_open(src, getattr(src, "name", "<file>"))
    path = os.fspath(src)
    try:
        with open(path, "rb") as f:
            return _map_open(f, path)
    except OSError as e:
        raise GraphFileError(f"{path}: cannot read: {e.strerror or e}") from e


def _map_open(f, path) -> MappedFile | bytes:
    size = os.fstat(f.fileno()).st_size
    if size > fbread.MAX_BUFFER:
        raise GraphFileError(f"{path}: invalid .ms file: {size} bytes exceeds the 2 GB limit")
    if not size:
        return b""
    try:
        return MappedFile(f)
    except (OSError, ValueError):  # a file system that cannot map: read it whole
        f.seek(0)
        return f.read()


def read(src, where: str | None = None) -> MsModel:
    """Read and verify a `.ms` file (path or bytes) into an ``MsModel``."""
    raw, default_where = _load(src)
    where = where or default_where
    meta = fbread.decode(raw, where)
    _check_model(meta, where)
    if isinstance(raw, MappedFile):
        raw.drop_pages()  # decoding the tables touched 38 of ResNet18's 90 MB
    return _Builder(meta, raw, where).build()


MAX_MESSAGE = 600  # hostile files name tensors with huge strings; keep errors readable


def _fail(where: str, msg: str):
    if len(msg) > MAX_MESSAGE:
        msg = msg[:MAX_MESSAGE] + f"... ({len(msg) - MAX_MESSAGE} more characters)"
    raise GraphFileError(f"{where}: invalid .ms file: {msg}")


def _dims(t) -> tuple[int, ...]:
    return tuple(int(d) for d in t.get("dims", ()))


def _check_model(meta, where: str) -> None:
    tensors, nodes = meta.get("allTensors", []), meta.get("nodes", [])
    nt = len(tensors)
    if not tensors:
        _fail(where, "the model has no tensors")

    def check_indices(idx, what, limit, kind="tensor"):
        for i in (idx if idx is not None else ()):
            if int(i) >= limit:
                _fail(where, f"{what} refers to {kind} {int(i)}, but there are only {limit}")

    check_indices(meta.get("inputIndex"), "MetaGraph.inputIndex", nt)
    check_indices(meta.get("outputIndex"), "MetaGraph.outputIndex", nt)
    for k, t in enumerate(tensors):
        what = f"tensor {k} ({t.get('name')!r})"
        dt = dtypes.from_ms(t["dataType"])
        if dt is None:
            _fail(where, f"{what} has unsupported dataType {t['dataType']}")
        dims = _dims(t)
        if any(d < 0 for d in dims):
            _fail(where, f"{what} has dynamic or negative dims {list(dims)}")
        if schema.enum_name("Format", t["format"]) is None:
            _fail(where, f"{what} has unknown format {t['format']}")
        if t.get("externalData"):
            _fail(where, f"{what} keeps its data in an external file, which is not supported")
        if "data" in t:
            want = math.prod(dims) * dt.itemsize  # Python ints: hostile dims cannot wrap
            if len(t["data"]) != want:
                _fail(where, f"{what} holds {len(t['data'])} data bytes, but dims "
                             f"{list(dims)} of {dt.name} need {want}")
    producer: dict[int, str] = {}
    for k, n in enumerate(nodes):
        name = n.get("name", f"node {k}")
        if not (n.get("primitive") or {}).get("value_type"):
            _fail(where, f"node {name!r} has no primitive")
        check_indices(n.get("inputIndex"), f"node {name!r} inputIndex", nt)
        check_indices(n.get("outputIndex"), f"node {name!r} outputIndex", nt)
        for i in n.get("outputIndex", ()):
            i = int(i)
            if i in producer:
                _fail(where, f"tensor {i} is an output of both {producer[i]!r} and {name!r}")
            if "data" in tensors[i]:
                _fail(where, f"node {name!r} output tensor {i} is a constant with data")
            producer[i] = name
    subs = meta.get("subGraph", [])
    if len(subs) > 1:
        _fail(where, f"{len(subs)} sub-graphs; only single-graph models are supported")
    for s in subs:
        for key, limit, kind in (("inputIndices", nt, "tensor"), ("outputIndices", nt, "tensor"),
                                 ("tensorIndices", nt, "tensor"),
                                 ("nodeIndices", len(nodes), "node")):
            check_indices(s.get(key), f"SubGraph {s.get('name')!r} {key}", limit, kind)
        if len(s.get("nodeIndices", ())) != len(nodes):
            _fail(where, f"sub-graph {s.get('name')!r} lists {len(s.get('nodeIndices', ()))} "
                         f"of the {len(nodes)} nodes")
        if not len(s.get("inputIndices", ())) or not len(s.get("outputIndices", ())):
            _fail(where, "the main sub-graph needs at least one input and one output")


class _Builder:
    def __init__(self, meta, raw: bytes | MappedFile, where: str):
        self.meta, self.raw, self.where = meta, raw, where
        self.tensors = meta["allTensors"]
        self.values: dict[int, Value] = {}
        self.folded: dict[tuple[str, int], str] = {}
        subs = meta.get("subGraph", [])
        self.sub_name = subs[0].get("name") if subs else None
        self.graph = Graph(meta.get("name") or self.sub_name or "graph")

    def fail(self, msg: str):
        _fail(self.where, msg)

    def tensor_name(self, i: int) -> str:
        return self.tensors[i].get("name") or f"tensor_{i}"

    def tensor_type(self, i: int) -> TensorType:
        t = self.tensors[i]
        return TensorType(_dims(t), dtypes.from_ms(t["dataType"]))

    def const_array(self, i: int) -> np.ndarray:
        t = self.tensors[i]
        dt = dtypes.from_ms(t["dataType"])
        if isinstance(self.raw, MappedFile) and "data" in t.spans and sys.byteorder == "little":
            arr = np.empty(_dims(t), dt.np)
            start, nbytes = t.spans["data"]
            try:
                self.raw.read_into(arr, start)
            except (GraphFileError, OSError) as e:
                self.fail(f"tensor {i} ({self.tensor_name(i)!r}): {e}")
            # A tensor's table and dims sit beside its data, and reading them mapped the
            # data's pages around them: unmap that neighbourhood (2 MB, the largest folio).
            self.raw.drop_pages(max(0, start - NEIGHBOURHOOD), start + nbytes + NEIGHBOURHOOD)
            return arr
        # One copy, in native byte order, out of the buffer (the file's data is a view).
        arr = np.array(t["data"].view(dt.np.newbyteorder("<")), dtype=dt.np)
        return arr.reshape(_dims(t))

    def build(self) -> MsModel:
        nodes = self.meta.get("nodes", [])
        plans = self._plan(nodes)
        self._make_inputs_and_consts(nodes, plans)
        for n, (row, member, attrs) in zip(nodes, plans):
            self._add_node(n, row, member, attrs)
        g = self.graph
        g.outputs = [self._value(int(i), "MetaGraph.outputIndex")
                     for i in self.meta.get("outputIndex", ())]
        verify(g, where=self.where)
        index = {v.name: k for k, v in self.values.items()}
        return MsModel(g, self.meta.get("name"), self.meta.get("version"),
                       int(self.meta.get("fmkType", 0)), self.sub_name, self.raw, index,
                       self.folded)

    def _plan(self, nodes):
        """Each node's row; every unsupported op is reported at once."""
        plans, missing = [], {}
        for k, n in enumerate(nodes):
            prim = n.get("primitive") or {}
            tag = prim.get("value_type", 0)
            member = schema.PRIMITIVE_TYPES[tag - 1]
            attrs = dict(prim.get("value", {}))
            row = optable.row_for_member(member, attrs)
            if row is None:
                desc = optable.describe_member(member, attrs)
                missing.setdefault(desc, []).append(n.get("name", f"node {k}"))
            plans.append((row, member, attrs))
        if missing:
            listing = "; ".join(f"{op} (nodes: {', '.join(ns)})" for op, ns in missing.items())
            raise OpNotFoundError(f"{self.where}: unsupported ops: {listing}", missing)
        return plans

    def _make_inputs_and_consts(self, nodes, plans) -> None:
        g = self.graph
        for i in self.meta.get("inputIndex", ()):
            i = int(i)
            if "data" in self.tensors[i]:
                self.fail(f"graph input tensor {i} ({self.tensor_name(i)!r}) holds data")
            if i in self.values:
                self.fail(f"tensor {i} is listed twice as a graph input")
            self._claim(i, g.add_input, self.tensor_name(i), self.tensor_type(i))
        # Constants folded into attributes become IR consts only if something else reads them.
        folded_only, real_use = set(), set()
        for n, (row, _, _) in zip(nodes, plans):
            folded_at = {c.index for c in row.const_inputs}
            for k, i in enumerate(n.get("inputIndex", ())):
                (folded_only if k in folded_at else real_use).add(int(i))
        outs = {int(i) for i in self.meta.get("outputIndex", ())}
        for i, t in enumerate(self.tensors):
            if "data" not in t or (i in folded_only and i not in real_use | outs):
                continue
            name = self.tensor_name(i)
            self._claim(i, g.add_const, name, self.const_array(i),
                        param=not name.startswith(CONST_NAME_PREFIX))

    def _claim(self, i: int, make, *args, **kwargs) -> Value:
        try:
            v = make(*args, **kwargs)
        except ValueError as e:  # a duplicated value name
            self.fail(f"tensor {i}: {e}")
        v.format = optable.fmt_name(self.tensors[i]["format"])
        self.values[i] = v
        return v

    def _value(self, i: int, what: str) -> Value:
        v = self.values.get(i)
        if v is None:
            self.fail(f"{what} reads tensor {i} ({self.tensor_name(i)!r}), which is not a graph "
                      "input, a constant or an output of an earlier node")
        return v

    def _add_node(self, n, row: optable.Row, member: str, attrs: dict) -> None:
        name = n.get("name") or self.graph.unique_name(row.ir)
        ins_idx = [int(i) for i in n.get("inputIndex", ())]
        outs_idx = [int(i) for i in n.get("outputIndex", ())]
        folded = {c.index: c for c in row.const_inputs}
        inputs, ir_attrs = [], {}
        for k, i in enumerate(ins_idx):
            c = folded.get(k)
            if c is None:
                inputs.append(self._value(i, f"node {name!r} input {k}"))
                continue
            if "data" not in self.tensors[i]:
                self.fail(f"node {name!r} ({member}) input {k} must be a constant")
            arr = self.const_array(i).ravel()
            if arr.dtype.kind not in "iu" or (c.scalar and arr.size != 1):
                self.fail(f"node {name!r} ({member}) input {k} must hold integer {c.attr}")
            ir_attrs[c.attr] = int(arr[0]) if c.scalar else tuple(int(x) for x in arr)
            self.folded[(name, k)] = self.tensor_name(i)
        missing = [c.index for c in row.const_inputs if c.index >= len(ins_idx)]
        if missing:
            self.fail(f"node {name!r} ({member}) lacks its constant input(s) {missing}")
        bias = None
        if row.fused_bias and len(inputs) == 3:
            bias = inputs.pop()
        act = attrs.get("activation_type", optable.NO_ACTIVATION) if row.fused_activation \
            else optable.NO_ACTIVATION
        try:
            ir_attrs.update(row.to_ir(attrs, inputs))
        except (KeyError, ValueError) as e:
            self.fail(f"node {name!r} ({member}) has attributes todkit cannot map: {e}")
        except IndexError:
            self.fail(f"node {name!r} ({member}) has {len(inputs)} input(s), too few for "
                      f"{member}")
        if act != optable.NO_ACTIVATION and act not in optable.ACTIVATION_OPS:
            act_name = schema.enum_name("ActivationType", act) or act
            raise OpNotFoundError(f"{self.where}: unsupported ops: {member}{{activation_type="
                                  f"{act_name}}} (nodes: {name})", {member: [name]})
        # The chain: the op, then a split-off bias and activation; the file's output tensor
        # names go to the last node, intermediate values get derived names.
        ir_op = row.ir_op(inputs)
        steps = [(ir_op, inputs, ir_attrs, name)]
        if bias is not None:
            # a batched product's bias runs along its last axis
            fmt = ir_attrs.get("format", "NCHW") if ir_op == "Conv2D" else \
                "NHWC" if ir_op == "BatchMatMul" else "NCHW"
            steps.append(("BiasAdd", [bias], {"data_format": fmt}, f"{name}/BiasAdd"))
        if act != optable.NO_ACTIVATION:
            op = optable.ACTIVATION_OPS[act]
            steps.append((op, [], {}, f"{name}/{op}"))
        prev = None
        for s, (op, extra, a, node_name) in enumerate(steps):
            last = s == len(steps) - 1
            ins = extra if prev is None else [prev, *extra]
            out_names = [self.tensor_name(i) for i in outs_idx] if last else \
                [self.graph.unique_name(f"{self.tensor_name(outs_idx[0])}/{op}")]
            node = self._emit(op, ins, a, node_name, out_names, len(outs_idx) if last else 1)
            prev = node.outputs[0]
        for i, v in zip(outs_idx, node.outputs):
            self._check_output(node.name, i, v)
            v.format = optable.fmt_name(self.tensors[i]["format"])
            self.values[i] = v

    def _emit(self, op, inputs, attrs, name, out_names, n_out):
        try:
            # extra names only matter when the file lists fewer outputs than the op has
            spare = [self.graph.unique_name(f"{name}_o:{k}") for k in range(len(out_names), 4)]
            node = emit(self.graph, op, inputs, attrs, name=name, out_names=out_names + spare)
        except (InferShapeError, OpAttrError) as e:
            raise GraphFileError(f"{self.where}: node {name!r}: {e}") from e
        except ValueError as e:  # a duplicated value name
            self.fail(f"node {name!r}: {e}")
        if len(node.outputs) != n_out:
            self.fail(f"node {name!r} ({op}) has {n_out} output tensors, the op has "
                      f"{len(node.outputs)}")
        return node

    def _check_output(self, node_name: str, i: int, v: Value) -> None:
        file_t = self.tensor_type(i)
        got, want = file_t.shape, v.type.shape
        one = {(), (1,)}
        if file_t.dtype != v.type.dtype or (got != want and not (got in one and want in one)):
            self.fail(f"node {node_name!r} output tensor {i} ({self.tensor_name(i)!r}) is "
                      f"{file_t} in the file, but the op's shape rule gives {v.type}")
