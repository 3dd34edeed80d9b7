"""The node order (and the nodes) MindSpore Lite's converter writes, from the MINDIR's CNode
structure (``todkit.formats.mindir.cnodes``).

What the real converter does, reproduced on a small stand-in for its ANF graph:
1. ``RemoveRedundantOpPass`` visits the nodes in ``TopoSort`` order from the graph's return
   once: a ``Load`` is replaced by the parameter it reads; an ``UpdateState(a, b)`` is replaced
   by its monad input when the other input is not a CNode or reads only parameters and values
   (``CheckIsAllInputsParam``), by that other input when it does not; when neither input is a
   monad and one is an input of the other, the edge is cut and a ``Depend(post, pre)`` takes
   the UpdateState's place; otherwise the UpdateState becomes a ``MakeTuple`` of its inputs.
   Without ``--trainModel`` the UMONAD chain goes first (``Depend(x, UpdateState)`` -> x).
2. ``AnfExporter`` writes the CNodes of ``TopoSort(return)``, skipping Depend, MakeTuple and
   TupleGetItem. MindSpore's TopoSort is a depth-first post-order that pushes a node's inputs
   on a stack first to last, so the *last* input is explored first (that is why Adam's
   ``beta2_power`` Mul precedes ``beta1_power``'s, and ``MaxPoolGrad-op0_pre_2`` its ``_pre_1``).
   A node the walk does not reach is not written (the Dense corpus nets' ``AssignAdd`` of
   ``global_step``, whose UpdateState collapsed to the monad).

The converter's own nodes (NHWC ``Transpose``s) join the stand-in where they sit in the IR: on
the data edge they were put on, and a ``<weight>_post_perm`` (a Transpose of a parameter that
no op reads) where the real one sits, as what the weight's ``Load``s packed for an UpdateState
read. Checked against every train ``.ms`` in the corpus (node for node).
"""

from __future__ import annotations

from todkit.formats.mindir.cnodes import CNodeRecord, Ref, record_of
from todkit.ir.graph import Graph, Node, Value

SKIPPED_BY_EXPORTER = ("Depend", "MakeTuple", "TupleGetItem", "UpdateState", "Load", "Return")


class _Anf:
    """A node of the stand-in ANF graph: a CNode (``op``, ``inputs``) or a leaf."""

    __slots__ = ("inputs", "ir", "is_cnode", "op")

    def __init__(self, op: str, inputs: list[_Anf], ir: Node | None = None, is_cnode=True):
        self.op, self.inputs, self.ir, self.is_cnode = op, inputs, ir, is_cnode


MONAD = _Anf("Monad", [], is_cnode=False)


def topo_sort(root: _Anf) -> list[_Anf]:
    """MindSpore's TopoSort: post-order, inputs pushed first to last (explored last first)."""
    res: list[_Anf] = []
    done: set[int] = set()
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack[-1]
        if id(node) in done:
            stack.pop()
            continue
        if id(node) in seen:
            stack.pop()
            res.append(node)
            done.add(id(node))
            continue
        seen.add(id(node))
        stack.extend(x for x in node.inputs if id(x) not in seen)
    return res


class _Manager:
    """Users of each node, kept up to date across replacements (FuncGraphManager's role)."""

    def __init__(self, root: _Anf):
        self.users: dict[int, list[tuple[_Anf, int]]] = {}
        for n in topo_sort(root):
            for k, x in enumerate(n.inputs):
                self.users.setdefault(id(x), []).append((n, k))

    def set_edge(self, user: _Anf, k: int, new: _Anf) -> None:
        old = user.inputs[k]
        self.users[id(old)] = [(u, i) for u, i in self.users.get(id(old), [])
                               if not (u is user and i == k)]
        user.inputs[k] = new
        self.users.setdefault(id(new), []).append((user, k))

    def replace(self, old: _Anf, new: _Anf) -> None:
        for user, k in list(self.users.get(id(old), [])):
            self.set_edge(user, k, new)

    def add(self, node: _Anf) -> None:
        for k, x in enumerate(node.inputs):
            self.users.setdefault(id(x), []).append((node, k))


def _reads_only_leaves(n: _Anf) -> bool:
    return all(not x.is_cnode for x in n.inputs)


def _remove_update_state(m: _Manager, node: _Anf) -> None:
    a, b = node.inputs[0], node.inputs[1]
    monad, other = (a, b) if a is MONAD else (b, a) if b is MONAD else (None, None)
    if monad is not None:
        keep_monad = not other.is_cnode or _reads_only_leaves(other)
        m.replace(node, monad if keep_monad else other)
        return
    for pre, post in ((a, b), (b, a)):
        edge = next((k for u, k in m.users.get(id(pre), []) if u is post), None)
        if edge is not None:
            m.set_edge(post, edge, MONAD)
            depend = _Anf("Depend", [post, pre])
            m.add(depend)
            m.replace(node, depend)
            return
    node.op = "MakeTuple"


def remove_redundant_ops(root: _Anf, train: bool) -> None:
    """RemoveRedundantOpPass on the stand-in graph (module docstring, step 1)."""
    m = _Manager(root)
    if not train:
        for n in topo_sort(root):
            if n.op == "Depend" and len(n.inputs) > 1 and n.inputs[1].op == "UpdateState":
                m.replace(n, n.inputs[0])
    for n in topo_sort(root):
        if not n.is_cnode:
            continue
        if n.op == "Load":
            m.replace(n, n.inputs[0])
        elif n.op == "UpdateState" and len(n.inputs) >= 2:
            _remove_update_state(m, n)


def _origin(v: Value) -> str:
    return v.producer.name if v.producer is not None else v.name


class _Builder:
    """The stand-in ANF graph of ``graph`` from the file's record plus the converter's nodes."""

    def __init__(self, graph: Graph, record: CNodeRecord):
        self.g, self.rec = graph, record
        self.by_name = {n.name: n for n in graph.nodes}
        recorded = {c.ir_node for c in record.cnodes.values() if c.ir_node}
        self.file_node = {c.ir_node: c.key for c in record.cnodes.values() if c.ir_node}
        self.inserted = {id(n) for n in graph.nodes if n.name not in recorded}
        self.anf: dict[str, _Anf] = {}
        self.made: dict[int, _Anf] = {}  # id(inserted IR node) -> its stand-in
        self.leaves: dict[Ref, _Anf] = {}
        # <weight>_post_perm: a converter Transpose of a parameter with no readers
        self.weight_posts = {n.inputs[0].name: n for n in graph.nodes
                             if id(n) in self.inserted and n.op == "Transpose"
                             and n.inputs[0].param and not n.outputs[0].users}

    def leaf(self, ref: Ref) -> _Anf:
        if ref[0] == "monad":
            return MONAD
        return self.leaves.setdefault(ref, _Anf(ref[0], [], is_cnode=False))

    def of(self, ref: Ref) -> _Anf:
        return self.anf[ref[1]] if ref[0] == "cnode" and ref[1] in self.anf else self.leaf(ref)

    def value_edge(self, v: Value, origin: str | None = None, orig: _Anf | None = None) -> _Anf:
        """The stand-in for reading ``v``; ``orig`` is what the file read where ``origin``
        (an IR node or value name) was read, kept so its Depend/Load chain stays."""
        if orig is not None and _origin(v) == origin:
            return orig
        p = v.producer
        if p is None:
            return self.leaf(("param" if v.param else "value", v.name))
        if id(p) in self.inserted:
            if id(p) not in self.made:
                self.made[id(p)] = _Anf(p.op, [], p)
                self.made[id(p)].inputs = [self.value_edge(x, origin, orig) for x in p.inputs]
            return self.made[id(p)]
        return self.anf[self.file_node[p.name]]

    def build(self) -> _Anf:
        cnodes = self.rec.cnodes
        for c in cnodes.values():
            ir = self.by_name.get(c.ir_node) if c.ir_node else None
            self.anf[c.key] = _Anf(c.op, [], ir)
        for c in cnodes.values():
            self.anf[c.key].inputs = [self.of(r) for r in c.inputs]
        for c in cnodes.values():
            a = self.anf[c.key]
            if c.op in ("MakeTuple", "UpdateState"):
                for k, r in enumerate(c.inputs):
                    post = self.weight_post_read(r)
                    if post is not None:
                        a.inputs[k] = _Anf("Load", [post, a.inputs[k].inputs[1]])
            if a.ir is not None:
                self.rewire_data(c, a)
        ret = _Anf("Return", [self.of(r) for r in self.rec.outputs])
        extra = [self.value_edge(v) for v in self.g.outputs
                 if v.producer is not None and id(v.producer) in self.inserted]
        ret.inputs = extra + ret.inputs
        return ret

    def weight_post_read(self, ref: Ref) -> _Anf | None:
        if ref[0] != "cnode" or ref[1] not in self.rec.cnodes:
            return None
        load = self.rec.cnodes[ref[1]]
        if load.op != "Load" or not load.inputs or load.inputs[0][0] != "param":
            return None
        post = self.weight_posts.get(load.inputs[0][1])
        return None if post is None else self.value_edge(post.outputs[0])

    def rewire_data(self, c, a: _Anf) -> None:
        """Data edges the converter changed (inserted Transposes, removed nodes)."""
        node = a.ir
        for j, (pos, item, origin) in enumerate(c.data_slots):
            if j >= len(node.inputs) or pos >= len(a.inputs):
                break
            v = node.inputs[j]
            if _origin(v) == origin:
                continue
            holder, at = (a, pos) if item is None else (a.inputs[pos], item)
            if at < len(holder.inputs):
                holder.inputs[at] = self.value_edge(v, origin, holder.inputs[at])


def exporter_order(graph: Graph, train: bool) -> tuple[list[Node], list[Node]] | None:
    """(the nodes in the real exporter's order, the nodes it would not write), or None when
    the graph did not come from a MINDIR (no record of its CNodes)."""
    record = record_of(graph)
    if record is None or not record.outputs:
        return None
    root = _Builder(graph, record).build()
    remove_redundant_ops(root, train)
    order, placed = [], set()
    for n in topo_sort(root):
        if n.is_cnode and n.ir is not None and n.op not in SKIPPED_BY_EXPORTER \
                and id(n.ir) not in placed:
            placed.add(id(n.ir))
            order.append(n.ir)
    return order, [n for n in graph.nodes if id(n) not in placed]
