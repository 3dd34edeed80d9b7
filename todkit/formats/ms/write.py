"""IR graph -> `.ms` bytes / file, laid out as the MindSpore Lite 2.0 converter writes a train
model.

One sub-graph lists every node and tensor. Tensors are numbered as the converter's exporter
numbers them (walking the nodes: a node's outputs, then its not yet numbered inputs), constants
with data get nodeType 0 (ValueNode), graph inputs and activations nodeType 2. IR attributes the
file passes as constant inputs are written as int32 tensors named ``Default/data-<n>``. Scalar
node outputs are written with dims [1] as the converter writes the mean loss (see ``read``).

With ``converter_consts`` (what ``converter_lite`` passes) every non-parameter constant is
written as the real exporter writes MINDIR value nodes: named ``Default/data-<n>`` in the order
tensors are created, scalars with dims [1].

``fusions`` (``fuse.find_fusions``) are written as one ``Conv2DFusion`` / ``MatMulFusion`` each,
as the real converter writes an inference model: named after the Conv2D/MatMul, the bias as its
third input, ``activation_type`` from the activation; its output tensor is named after the
head node too, except a graph output, which keeps its own name (``lenet_infer.ms``:
``fc3-Dense/MatMulFusion`` writes ``fc3-Dense/BiasAdd-op0``).
"""

from __future__ import annotations

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import OpNotFoundError, ParamError
from todkit.core.fileio import atomic_write  # re-exported: ms.atomic_write
from todkit.formats.ms import fbread, fbwrite, optable, schema
from todkit.formats.ms.fuse import FUSED_ACTIVATIONS, Fusion
from todkit.formats.ms.read import CONST_NAME_PREFIX
from todkit.ir.graph import Graph, Value
from todkit.opset import verify

NODE_TYPE_VALUE, NODE_TYPE_CNODE = 0, 2  # schema NodeType: ValueNode, (Parameter,) CNode
DEFAULT_VERSION = "MindSpore Lite 2.0.0"
DEFAULT_SUBGRAPH = "subgraph_0_main_graph"
FMK_TYPE_MINDIR = 3
CONST_INPUT_NAMES = "ms_const_input_names"  # graph.attrs key set by the converter's passes


def ms_path(output_file: str) -> str:
    """The file name the real converter writes: ``.ms`` appended unless already there."""
    return output_file if str(output_file).endswith(".ms") else f"{output_file}.ms"


def dumps(graph: Graph, *, name: str | None = None, version: str = DEFAULT_VERSION,
          subgraph_name: str = DEFAULT_SUBGRAPH, fmk_type: int = FMK_TYPE_MINDIR,
          converter_consts: bool = False, fusions: list[Fusion] = ()) -> bytes:
    """The `.ms` bytes of ``graph``."""
    verify(graph, where=f"graph {graph.name!r}")
    builder = _MetaGraphBuilder(graph, converter_consts, fusions)
    return fbwrite.encode(builder.build(name, version, subgraph_name, fmk_type))


def write(graph: Graph, path, *, name: str | None = None, version: str = DEFAULT_VERSION,
          subgraph_name: str = DEFAULT_SUBGRAPH, fmk_type: int = FMK_TYPE_MINDIR,
          converter_consts: bool = False, fusions: list[Fusion] = ()) -> None:
    """Write ``graph`` to ``path`` (exactly that name: see ``ms_path``) atomically, mode 0644."""
    data = dumps(graph, name=name, version=version, subgraph_name=subgraph_name,
                 fmk_type=fmk_type, converter_consts=converter_consts, fusions=fusions)
    atomic_write(path, data)


def _le_bytes(arr: np.ndarray) -> bytes:
    return np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).tobytes()


class _MetaGraphBuilder:
    def __init__(self, graph: Graph, converter_consts: bool = False,
                 fusions: list[Fusion] = ()):
        self.g = graph
        self.fusion_of = {id(f.head): f for f in fusions}
        self.fused_away = {id(n) for f in fusions for n in f.nodes[1:]}
        self.renamed: dict[int, str] = {}  # id(fused output) -> the head's output name
        self.converter_consts = converter_consts
        self.tensors: list[dict] = []
        self.index: dict[int, int] = {}  # id(Value) -> tensor index
        taken = [int(v.name[len(CONST_NAME_PREFIX):]) for v in graph.values()
                 if v.name.startswith(CONST_NAME_PREFIX)
                 and v.name[len(CONST_NAME_PREFIX):].isdigit()]
        self.next_data = 0 if converter_consts else max(taken, default=-1) + 1
        self.produced = {id(v) for n in graph.nodes for v in n.outputs}
        # (node name, input index) -> the name the converter gave that constant input
        self.const_names: dict = graph.attrs.get(CONST_INPUT_NAMES, {})

    def tensor(self, v: Value) -> int:
        k = self.index.get(id(v))
        if k is None:
            k = self.index[id(v)] = len(self.tensors)
            self.tensors.append(self._tensor_dict(v))
        return k

    def _tensor_dict(self, v: Value) -> dict:
        shape, name = v.type.shape, self.renamed.get(id(v), v.name)
        if id(v) in self.produced and shape == ():
            shape = (1,)
        if self.converter_consts and v.data is not None and not v.param:
            shape = shape or (1,)
            name = f"{CONST_NAME_PREFIX}{self.next_data}"
            self.next_data += 1
        t = {"nodeType": NODE_TYPE_VALUE if v.data is not None else NODE_TYPE_CNODE,
             "dataType": v.type.dtype.ms_type_id, "dims": list(shape) or None,
             "format": optable.fmt_code(v.format), "name": name}
        if v.data is not None:
            t["data"] = _le_bytes(np.asarray(v.data, dtype=v.type.dtype.np))
        return t

    def const_input(self, values, name: str | None = None, fmt: str = "NCHW") -> int:
        """A new int32 tensor (the converter's form of attr inputs): ``Default/data-<n>``
        unless the converter named it (the perms of the Transposes its NHWC pass inserts are
        ``<transpose>_perm``, tagged with the format of the tensor they permute)."""
        arr = np.asarray(values, dtype=np.int32).reshape(-1)
        if name is None:
            name = f"{CONST_NAME_PREFIX}{self.next_data}"
            self.next_data += 1
        self.tensors.append({"nodeType": NODE_TYPE_VALUE, "dataType": 34, "dims": [arr.size],
                             "format": optable.fmt_code(fmt), "name": name,
                             "data": _le_bytes(arr)})
        return len(self.tensors) - 1

    def node(self, n) -> dict:
        row = optable.BY_IR[n.op]
        fusion = self.fusion_of.get(id(n))
        out_values, in_values = n.outputs, n.inputs
        if fusion is not None:
            out_values = [fusion.output]
            if fusion.output not in self.g.outputs:
                self.renamed[id(fusion.output)] = n.outputs[0].name
            if fusion.bias is not None:
                in_values = [*n.inputs, fusion.bias.inputs[1]]
        outs = [self.tensor(v) for v in out_values]
        ins = [self.tensor(v) for v in in_values]
        for c in sorted(row.const_inputs, key=lambda c: c.index):
            val = n.attrs[c.attr]
            name = self.const_names.get((n.name, c.index))
            fmt = n.inputs[0].format if name is not None else "NCHW"
            ins.insert(c.index, self.const_input([val] if c.scalar else val, name, fmt))
        attrs = dict(row.select)
        attrs.update(row.to_ms(n.attrs, n.inputs))
        if fusion is not None and fusion.activation is not None:
            attrs["activation_type"] = FUSED_ACTIVATIONS[fusion.activation.op]
        return {"name": n.name, "primitive": {"value_type": schema.PRIMITIVE_TAG[row.ms],
                                              "value": attrs},
                "inputIndex": ins, "outputIndex": outs}

    def build(self, name, version, subgraph_name, fmk_type) -> dict:
        missing: dict[str, list[str]] = {}
        for n in self.g.nodes:
            if n.op not in optable.BY_IR:
                missing.setdefault(n.op, []).append(n.name)
        if missing:
            listing = "; ".join(f"{op} (nodes: {', '.join(ns)})" for op, ns in missing.items())
            raise OpNotFoundError(f"graph {self.g.name!r}: no .ms form for ops: {listing}",
                                  missing)
        nodes = [self.node(n) for n in self.g.nodes if id(n) not in self.fused_away]
        inputs = [self.tensor(v) for v in self.g.inputs]
        outputs = [self.tensor(v) for v in self.g.outputs]
        for v in self.g.consts:  # unused constants still travel with the model
            self.tensor(v)
        n_t = len(self.tensors)
        return {
            "name": name, "version": version, "fmkType": fmk_type,
            "inputIndex": inputs, "outputIndex": outputs, "nodes": nodes,
            "allTensors": self.tensors,
            "subGraph": [{"name": subgraph_name, "inputIndices": inputs,
                          "outputIndices": outputs, "nodeIndices": list(range(len(nodes))),
                          "tensorIndices": list(range(n_t))}],
        }


def patch_tensor_data(raw: bytes, updates: dict[str, np.ndarray], where: str = "<buffer>"
                      ) -> bytes:
    """``raw`` with the data of the named constant tensors replaced, everything else as is.

    What MindSpore Lite's train export does when only weights changed. Each new value must have
    the tensor's dtype and element count (its shape may differ, e.g. Adam moments of KHWC conv
    weights are stored in the MINDIR's layout).
    """
    meta = fbread.decode(raw, where)
    by_name = {t.get("name"): t for t in meta.get("allTensors", [])}
    out = bytearray(raw)
    problems = []
    for tname, value in updates.items():
        t = by_name.get(tname)
        if t is None or "data" not in t:
            problems.append(f"{tname!r} is not a constant tensor of the model")
            continue
        dt = dtypes.from_ms(t["dataType"])
        arr = np.asarray(value)
        start, nbytes = t.spans["data"]
        if dt is None or arr.dtype != dt.np or arr.nbytes != nbytes:
            problems.append(f"{tname!r} holds {nbytes} bytes of "
                            f"{dt.name if dt else t['dataType']}, got {arr.dtype}"
                            f"{list(arr.shape)}")
            continue
        out[start:start + nbytes] = _le_bytes(arr)
    if problems:
        raise ParamError(f"{where}: cannot update tensor data: " + "; ".join(problems))
    return bytes(out)
