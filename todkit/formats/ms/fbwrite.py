"""A generic FlatBuffers writer driven by the schema description in ``schema.py``.

Input is the same shape ``fbread`` produces: a dict per table (missing scalar fields take the
schema default and, as with the C++ builder MindSpore Lite uses, fields equal to their default
are not stored), lists for vectors of tables, sequences / NumPy arrays / bytes for vectors of
scalars, and ``<field>_type`` + ``<field>`` for a union.
"""

from __future__ import annotations

import flatbuffers
import numpy as np

from todkit.formats.ms import schema

_PREPEND_SLOT = {
    "bool": "PrependBoolSlot", "byte": "PrependInt8Slot", "ubyte": "PrependUint8Slot",
    "short": "PrependInt16Slot", "ushort": "PrependUint16Slot", "int": "PrependInt32Slot",
    "uint": "PrependUint32Slot", "long": "PrependInt64Slot", "ulong": "PrependUint64Slot",
    "float": "PrependFloat32Slot", "double": "PrependFloat64Slot",
}
_NP_TYPE = {"bool": "u1", "byte": "i1", "ubyte": "u1", "short": "<i2", "ushort": "<u2",
            "int": "<i4", "uint": "<u4", "long": "<i8", "ulong": "<u8", "float": "<f4",
            "double": "<f8"}
# Tensor payloads are aligned so a reader can view them as float64/int64 arrays in place.
BYTES_ALIGNMENT = 16


class Writer:
    def __init__(self, initial_size: int = 1024):
        self.b = flatbuffers.Builder(initial_size)

    def finish(self, root: dict) -> bytes:
        off = self.table(root, schema.ROOT_TABLE)
        self.b.Finish(off, file_identifier=schema.FILE_IDENTIFIER)
        return bytes(self.b.Output())

    def table(self, value: dict, tname: str) -> int:
        fields = schema.TABLES.get(tname, [])
        children: dict[str, int] = {}
        for f in fields:  # children first: a table cannot be open while others are built
            if f.deprecated or value.get(f.name) is None:
                continue
            if f.type in schema.UNIONS:
                tag = value[f.name + "_type"]
                children[f.name] = self.table(value[f.name], schema.UNIONS[f.type][tag - 1])
            elif self._base(f.type) not in schema.SCALARS:
                children[f.name] = self._offset_value(value[f.name], f.type)
        b = self.b
        b.StartObject(schema.slot_count(tname))
        slot = 0
        for f in fields:
            if f.type in schema.UNIONS:
                if f.name in children:
                    b.PrependUint8Slot(slot, value[f.name + "_type"], 0)
                    b.PrependUOffsetTRelativeSlot(slot + 1, children[f.name], 0)
                slot += 2
                continue
            base = self._base(f.type)
            if f.deprecated:
                pass
            elif base in schema.SCALARS:
                if value.get(f.name) is not None:
                    default = f.default if f.default is not None else 0
                    v = value[f.name]
                    v = bool(v) if base == "bool" else (float(v) if base in ("float", "double")
                                                       else int(v))
                    getattr(b, _PREPEND_SLOT[base])(slot, v, default)
            elif f.name in children:
                b.PrependUOffsetTRelativeSlot(slot, children[f.name], 0)
            slot += 1
        return b.EndObject()

    @staticmethod
    def _base(t: str) -> str:
        return schema.ENUMS[t][0] if t in schema.ENUMS else t

    def _offset_value(self, v, ftype: str) -> int:
        b = self.b
        if ftype == "string":
            return b.CreateString(v)
        if not ftype.startswith("["):
            return self.table(v, ftype)
        elem = self._base(ftype[1:-1])
        if elem == "ubyte":
            data = bytes(v) if not isinstance(v, bytes) else v
            b.StartVector(1, len(data), BYTES_ALIGNMENT)
            b.head = b.head - len(data)
            b.Bytes[b.head: b.head + len(data)] = data
            return b.EndVector()
        if elem in schema.SCALARS:
            return b.CreateNumpyVector(np.ascontiguousarray(v, dtype=_NP_TYPE[elem]).ravel())
        offs = [b.CreateString(x) if elem == "string" else self.table(x, elem) for x in v]
        b.StartVector(4, len(offs), 4)
        for o in reversed(offs):
            b.PrependUOffsetTRelative(o)
        return b.EndVector()


def encode(root: dict) -> bytes:
    """Build a finished `.ms` buffer (identifier ``MSL2``) from a ``MetaGraph`` dict."""
    return Writer().finish(root)
