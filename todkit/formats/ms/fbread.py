"""A generic, verifying FlatBuffers reader driven by the schema description in ``schema.py``.

It checks what ``flatbuffers::Verifier`` checks before anything is trusted: the file identifier,
that every table, vtable, string and vector lies inside the buffer and is aligned, that strings
are terminated and UTF-8, and that union tags are known. Sizes declared in the file are only
used after the bytes they cover are known to exist, so a corrupt file can never make us
allocate more than its own size. Every problem raises ``GraphFileError`` naming the file and the
path of the offending field (``allTensors[3].dims``).

FlatBuffers lets many offsets point at one table or string. Decoding each reference afresh
would let a 130 KB file (20,000 offsets to one 50 KB string) expand to a gigabyte, so every
table and string is decoded once per position and shared; and, as the C++ verifier does, the
number of tables and the nesting depth are capped.

Decoded tables are plain dicts (absent scalar fields hold their schema default, absent offset
fields are missing); vectors of scalars are read-only NumPy views of the buffer. ``Table.spans``
records where each vector's payload lies, for in-place patching of tensor data.
"""

from __future__ import annotations

import mmap
import struct

import numpy as np

from todkit.core.errors import GraphFileError
from todkit.formats.ms import schema

MAX_BUFFER = 2**31 - 1  # MindSpore Lite refuses model buffers of 2 GB or more
MAX_TABLES = 1_000_000  # flatbuffers::Verifier's default max_tables
MAX_DEPTH = 64  # flatbuffers::Verifier's default max_depth
SMALL_VECTOR = 4096  # bytes: vectors copied out of a mapped file at decode (Reader._offset_field)
_NP_CODES = {"B": "u1", "b": "i1", "h": "<i2", "H": "<u2", "i": "<i4", "I": "<u4",
             "q": "<i8", "Q": "<u8", "f": "<f4", "d": "<f8"}


class Table(dict):
    """A decoded table: field name -> value; ``spans[field] = (offset, nbytes)`` for vectors."""

    __slots__ = ("spans",)

    def __init__(self):
        super().__init__()
        self.spans: dict[str, tuple[int, int]] = {}


class Reader:
    def __init__(self, buf, where: str):
        # A mapped file is read in place: vectors stay views of it, so a weight's pages are
        # only touched when the weight is copied out (formats/ms/read.py, ``map_file``).
        self.buf = buf if isinstance(buf, (bytes, mmap.mmap)) else bytes(buf)
        self.mapped = isinstance(buf, mmap.mmap)
        self.where = where
        self.size = len(self.buf)
        self.tables: dict[tuple[int, str], Table] = {}  # (position, table type) -> decoded
        self.strings: dict[int, str] = {}
        self.depth = 0

    def fail(self, msg: str):
        raise GraphFileError(f"{self.where}: invalid .ms file: {msg}")

    # -- primitive accessors, each bounds-checked -------------------------------------
    def _check(self, pos: int, n: int, align: int, what: str) -> None:
        if pos < 0 or n < 0 or pos + n > self.size:
            self.fail(f"{what} at offset {pos} (+{n} bytes) is outside the "
                      f"{self.size}-byte buffer")
        if align > 1 and pos % align:
            self.fail(f"{what} at offset {pos} is not {align}-byte aligned")

    def scalar(self, pos: int, type_: str, what: str):
        code, n = schema.SCALARS[type_]
        self._check(pos, n, n, what)
        v = struct.unpack_from("<" + code, self.buf, pos)[0]
        return bool(v) if type_ == "bool" else v

    def _u32(self, pos: int, what: str) -> int:
        return self.scalar(pos, "uint", what)

    def _deref(self, pos: int, what: str) -> int:
        """Follow the uoffset stored at ``pos``."""
        off = self._u32(pos, what)
        if off == 0:
            self.fail(f"{what}: null offset")
        target = pos + off
        self._check(target, 4, 4, what)
        return target

    # -- decoding -----------------------------------------------------------------------
    def root(self) -> Table:
        if self.size < 8:
            self.fail(f"{self.size} bytes is too short for a FlatBuffers file")
        if self.size > MAX_BUFFER:
            self.fail(f"{self.size} bytes exceeds the 2 GB limit")
        ident = self.buf[4:8]
        if ident != schema.FILE_IDENTIFIER:
            # A MINDIR starts with ModelProto field 1 (ir_version, a string: tag byte 0x0a);
            # users hand those to the runtime by mistake, so say what to do.
            hint = ("; it looks like a MINDIR: convert it first with converter_lite "
                    "--fmk=MINDIR" if self.buf[:1] == b"\x0a" else "")
            self.fail(f"file identifier is {ident!r}, expected {schema.FILE_IDENTIFIER!r} "
                      f"(not a MindSpore Lite 2.x model){hint}")
        return self.table(self._deref(0, "root offset"), schema.ROOT_TABLE, schema.ROOT_TABLE)

    def table(self, pos: int, tname: str, path: str) -> Table:
        done = self.tables.get((pos, tname))
        if done is not None:
            return done
        if len(self.tables) >= MAX_TABLES:
            self.fail(f"{path}: more than {MAX_TABLES} tables")
        if self.depth >= MAX_DEPTH:
            self.fail(f"{path}: tables nested deeper than {MAX_DEPTH}")
        self.depth += 1
        try:
            out = self._table(pos, tname, path)
        finally:
            self.depth -= 1
        self.tables[(pos, tname)] = out
        return out

    def _table(self, pos: int, tname: str, path: str) -> Table:
        self._check(pos, 4, 4, f"{path} (table)")
        vt = pos - struct.unpack_from("<i", self.buf, pos)[0]
        self._check(vt, 4, 2, f"{path} (vtable)")
        vt_size, obj_size = struct.unpack_from("<HH", self.buf, vt)
        if vt_size < 4 or vt_size % 2:
            self.fail(f"{path}: vtable size {vt_size} is invalid")
        self._check(vt, vt_size, 2, f"{path} (vtable)")
        self._check(pos, obj_size, 4, f"{path} (table body)")
        nslots = (vt_size - 4) // 2

        def field_pos(slot: int, nbytes: int, name: str) -> int | None:
            if slot >= nslots:
                return None
            voff = struct.unpack_from("<H", self.buf, vt + 4 + 2 * slot)[0]
            if voff == 0:
                return None
            if voff + nbytes > obj_size:
                self.fail(f"{path}.{name}: field lies outside its table")
            return pos + voff

        out = Table()
        slot = 0
        for f in schema.TABLES.get(tname, ()):
            if f.type in schema.UNIONS:
                members = schema.UNIONS[f.type]
                tpos = field_pos(slot, 1, f.name + "_type")
                tag = self.scalar(tpos, "ubyte", f"{path}.{f.name}_type") if tpos else 0
                vpos = field_pos(slot + 1, 4, f.name)
                slot += 2
                if tag > len(members):
                    self.fail(f"{path}.{f.name}: unknown {f.type} union tag {tag}")
                out[f.name + "_type"] = tag
                if tag and vpos is None:
                    self.fail(f"{path}.{f.name}: union tag {tag} without a value")
                if tag:
                    member = members[tag - 1]
                    out[f.name] = self.table(self._deref(vpos, f"{path}.{f.name}"), member,
                                             f"{path}.{f.name}<{member}>")
                continue
            ftype = schema.ENUMS[f.type][0] if f.type in schema.ENUMS else f.type
            size = schema.SCALARS[ftype][1] if ftype in schema.SCALARS else 4
            fpos = field_pos(slot, size, f.name)
            slot += 1
            if f.deprecated:
                continue
            fpath = f"{path}.{f.name}"
            if ftype in schema.SCALARS:
                if fpos is None:
                    d = f.default if f.default is not None else 0
                    out[f.name] = bool(d) if ftype == "bool" else d
                else:
                    out[f.name] = self.scalar(fpos, ftype, fpath)
            elif fpos is not None:
                out[f.name] = self._offset_field(fpos, ftype, fpath, out, f.name)
        return out

    def _offset_field(self, fpos: int, ftype: str, path: str, out: Table, name: str):
        target = self._deref(fpos, path)
        if ftype == "string":
            return self.string(target, path)
        if ftype.startswith("["):
            elem = ftype[1:-1]
            n = self._u32(target, f"{path} (length)")
            start = target + 4
            if elem in schema.ENUMS:
                elem = schema.ENUMS[elem][0]
            if elem in schema.SCALARS:
                code, esize = schema.SCALARS[elem]
                self._check(start, n * esize, esize, path)
                out.spans[name] = (start, n * esize)
                arr = np.frombuffer(self.buf, _NP_CODES[code], n, start)
                if elem == "bool":
                    return arr.astype(bool)
                # From a mapped file, small vectors (dims, indices) are copied now, so that
                # reading them later does not map file pages again; large ones (tensor data)
                # stay views, read once by their owner.
                return arr.copy() if self.mapped and arr.nbytes <= SMALL_VECTOR else arr
            if elem == "string":
                self._check(start, 4 * n, 4, path)
                return [self.string(self._deref(start + 4 * i, f"{path}[{i}]"), f"{path}[{i}]")
                        for i in range(n)]
            self._check(start, 4 * n, 4, path)
            return [self.table(self._deref(start + 4 * i, f"{path}[{i}]"), elem, f"{path}[{i}]")
                    for i in range(n)]
        return self.table(target, ftype, path)

    def string(self, pos: int, path: str) -> str:
        done = self.strings.get(pos)
        if done is None:
            done = self.strings[pos] = self._string(pos, path)
        return done

    def _string(self, pos: int, path: str) -> str:
        n = self._u32(pos, f"{path} (length)")
        self._check(pos + 4, n + 1, 1, path)
        if self.buf[pos + 4 + n] != 0:
            self.fail(f"{path}: string is not null-terminated")
        try:
            return self.buf[pos + 4: pos + 4 + n].decode("utf-8")
        except UnicodeDecodeError:
            self.fail(f"{path}: string is not valid UTF-8")


def decode(buf, where: str) -> Table:
    """Verify and decode a whole `.ms` buffer into nested ``Table`` dicts."""
    return Reader(buf, where).root()
