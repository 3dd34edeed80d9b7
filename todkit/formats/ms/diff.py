"""Readable differences between two `.ms` files, at the level of the file itself.

Works on the verified FlatBuffers decode (``fbread``), not on the IR, so what the real converter
wrote is compared as written: union members and their attribute tables, every tensor's name,
dims, dataType, format, nodeType and bytes.

Alignment. Nodes are matched by name (the names the runtime looks up: loss, ``Gradients/...``,
optimizers), and a difference in their order is reported as one line; with ``names=False``
nodes are matched by position and tensor names are not compared. A tensor is compared where it
is used: as a graph input or output (by position) and as the k-th input or output of a matched
node; tensors no node uses are matched by name.

``order=False`` drops the node-order line (the converter reproduces the real exporter's walk
for MINDIR it reads, but any topological order runs the same).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from todkit.core import dtypes
from todkit.formats.ms import fbread, schema

NODE_TYPES = {0: "ValueNode", 1: "Parameter", 2: "CNode"}


@dataclass(frozen=True)
class DiffOptions:
    names: bool = True     # compare node and tensor names (and align nodes by name)
    data: bool = True      # compare constant bytes
    formats: bool = True   # compare tensor formats and format attributes
    order: bool = True     # report a different node order
    max_lines: int = 200   # stop listing after this many differences


def _load(src) -> tuple[dict, str]:
    if isinstance(src, (bytes, bytearray, memoryview)):
        return fbread.decode(bytes(src), "<buffer>"), "<buffer>"
    with open(src, "rb") as f:
        raw = f.read()
    return fbread.decode(raw, str(src)), str(src)


def _plain(v):
    """Attribute values as comparable Python values (vectors are NumPy views)."""
    if isinstance(v, np.ndarray):
        return [x.item() for x in v]
    if isinstance(v, dict):
        return {k: _plain(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_plain(x) for x in v]
    return v


def _fmt(code) -> str:
    return schema.enum_name("Format", int(code)) or str(code)


def _dtype(code) -> str:
    dt = dtypes.from_ms(int(code))
    return dt.name if dt else str(code)


class _Differ:
    def __init__(self, a: dict, b: dict, opts: DiffOptions):
        self.a, self.b, self.o = a, b, opts
        self.ta, self.tb = a.get("allTensors", []), b.get("allTensors", [])
        self.lines: list[str] = []
        self.seen: set[tuple[int, int]] = set()

    def add(self, line: str) -> None:
        self.lines.append(line)

    # -- tensors ---------------------------------------------------------------------
    def tensor(self, ia: int, ib: int, where: str) -> None:
        if (ia, ib) in self.seen:
            return
        self.seen.add((ia, ib))
        x, y = self.ta[ia], self.tb[ib]
        label = f"tensor {x.get('name')!r}" if self.o.names else f"tensor #{ia}/#{ib}"
        label += f" ({where})"
        checks = [("nodeType", NODE_TYPES.get, "nodeType"),
                  ("dataType", _dtype, "dtype"),
                  ("dims", lambda d: list(_plain(d)) if d is not None else [], "dims")]
        if self.o.names:
            checks.append(("name", str, "name"))
        if self.o.formats:
            checks.append(("format", _fmt, "format"))
        for key, show, what in checks:
            va, vb = show(x.get(key)), show(y.get(key))
            if va != vb:
                self.add(f"{label}: {what} {va} != {vb}")
        if self.o.data:
            self.tensor_data(x, y, label)

    def tensor_data(self, x, y, label: str) -> None:
        da, db = x.get("data"), y.get("data")
        if da is None and db is None:
            return
        if (da is None) != (db is None):
            self.add(f"{label}: data {'present' if da is not None else 'absent'} != "
                     f"{'present' if db is not None else 'absent'}")
            return
        ba, bb = da.tobytes(), db.tobytes()
        if ba == bb:
            return
        dt = dtypes.from_ms(int(x["dataType"]))
        if dt is None or len(ba) != len(bb) or x["dataType"] != y["dataType"]:
            self.add(f"{label}: data {len(ba)} bytes != {len(bb)} bytes")
            return
        va = np.frombuffer(ba, dt.np.newbyteorder("<")).astype(np.float64)
        vb = np.frombuffer(bb, dt.np.newbyteorder("<")).astype(np.float64)
        diff = np.abs(va - vb)
        self.add(f"{label}: data differs in {int((va != vb).sum())} of {va.size} elements, "
                 f"max abs diff {float(np.nanmax(diff)):.6g}")

    # -- nodes -------------------------------------------------------------------------
    def node(self, x: dict, y: dict) -> None:
        name = x.get("name")
        label = f"node {name!r}" if self.o.names else f"node {name!r} / {y.get('name')!r}"
        pa, pb = x.get("primitive") or {}, y.get("primitive") or {}
        ma = schema.PRIMITIVE_TYPES[pa.get("value_type", 1) - 1]
        mb = schema.PRIMITIVE_TYPES[pb.get("value_type", 1) - 1]
        if ma != mb:
            self.add(f"{label}: op {ma} != {mb}")
        else:
            aa, ab = _plain(dict(pa.get("value", {}))), _plain(dict(pb.get("value", {})))
            for k in sorted(set(aa) | set(ab)):
                if not self.o.formats and k == "format":
                    continue
                if aa.get(k) != ab.get(k):
                    self.add(f"{label}: attribute {k} {aa.get(k)} != {ab.get(k)}")
        for kind in ("inputIndex", "outputIndex"):
            ia, ib = list(x.get(kind, ())), list(y.get(kind, ()))
            word = "input" if kind == "inputIndex" else "output"
            if len(ia) != len(ib):
                self.add(f"{label}: {len(ia)} {word}s != {len(ib)}")
            for k, (i, j) in enumerate(zip(ia, ib)):
                self.tensor(int(i), int(j), f"{word} {k} of {name!r}")

    def nodes(self) -> None:
        na, nb = self.a.get("nodes", []), self.b.get("nodes", [])
        if not self.o.names:
            if len(na) != len(nb):
                self.add(f"graph: {len(na)} nodes != {len(nb)}")
            for x, y in zip(na, nb):
                self.node(x, y)
            return
        by_b = {n.get("name"): n for n in nb}
        names_a = [n.get("name") for n in na]
        for x in na:
            y = by_b.get(x.get("name"))
            if y is None:
                self.add(f"node {x.get('name')!r} ({self.member(x)}): only in the first file")
            else:
                self.node(x, y)
        only_b = [n for n in nb if n.get("name") not in set(names_a)]
        for y in only_b:
            self.add(f"node {y.get('name')!r} ({self.member(y)}): only in the second file")
        if self.o.order:
            common = set(names_a) & set(by_b)
            sa = [n for n in names_a if n in common]
            sb = [n.get("name") for n in nb if n.get("name") in common]
            if sa != sb:
                k = next(i for i, (p, q) in enumerate(zip(sa, sb)) if p != q)
                self.add(f"node order differs from position {k}: {sa[k]!r} != {sb[k]!r}")

    @staticmethod
    def member(n: dict) -> str:
        tag = (n.get("primitive") or {}).get("value_type", 0)
        return schema.PRIMITIVE_TYPES[tag - 1] if tag else "NONE"

    # -- whole graph -------------------------------------------------------------------
    def graph_io(self) -> None:
        for key, word in (("inputIndex", "graph input"), ("outputIndex", "graph output")):
            ia, ib = list(self.a.get(key, ())), list(self.b.get(key, ()))
            if len(ia) != len(ib):
                self.add(f"graph: {len(ia)} {word}s != {len(ib)}")
            for k, (i, j) in enumerate(zip(ia, ib)):
                self.tensor(int(i), int(j), f"{word} {k}")

    def unused_tensors(self) -> None:
        def unused(meta, tensors):
            used = {int(i) for n in meta.get("nodes", []) for key in ("inputIndex", "outputIndex")
                    for i in n.get(key, ())}
            used |= {int(i) for key in ("inputIndex", "outputIndex") for i in meta.get(key, ())}
            return {t.get("name"): k for k, t in enumerate(tensors) if k not in used}

        ua, ub = unused(self.a, self.ta), unused(self.b, self.tb)
        for name in sorted(set(ua) | set(ub), key=str):
            if name in ua and name in ub:
                self.tensor(ua[name], ub[name], "used by no node")
            elif self.o.names or len(ua) != len(ub):
                side = "first" if name in ua else "second"
                self.add(f"tensor {name!r}: used by no node, only in the {side} file")

    def run(self) -> list[str]:
        self.graph_io()
        self.nodes()
        self.unused_tensors()
        return self.lines


def diff(a, b, opts: DiffOptions | None = None) -> list[str]:
    """The differences between `.ms` files (paths or bytes) ``a`` and ``b``; [] if equivalent."""
    opts = opts or DiffOptions()
    (ma, _), (mb, _) = _load(a), _load(b)
    return _Differ(ma, mb, opts).run()
