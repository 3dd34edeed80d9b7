"""Element types, with their codes in both file formats side by side.

One row per dtype: the NumPy type, MINDIR's ``TensorProto.DataType`` code, and MindSpore's
``TypeId`` as stored in ``.ms`` ``Tensor.dataType`` (stable ids for the types we use: see
reference/formats.md). Codecs look codes up here; nothing else spells them.
"""

from __future__ import annotations

import numpy as np


class DType:
    """A MindSpore-style dtype (``todkit.float32`` ...)."""

    __slots__ = ("mindir", "ms_type_id", "name", "np")

    def __init__(self, name: str, np_type, mindir: int, ms_type_id: int):
        self.name = name
        self.np = np.dtype(np_type)
        self.mindir = mindir
        self.ms_type_id = ms_type_id

    def __repr__(self) -> str:
        return f"todkit.{self.name}"

    def __reduce__(self):
        return (from_name, (self.name,))

    @property
    def itemsize(self) -> int:
        return self.np.itemsize


#            name       numpy       MINDIR  .ms TypeId
bool_ = DType("bool_", np.bool_, 9, 30)
int8 = DType("int8", np.int8, 3, 32)
int16 = DType("int16", np.int16, 5, 33)
int32 = DType("int32", np.int32, 6, 34)
int64 = DType("int64", np.int64, 7, 35)
uint8 = DType("uint8", np.uint8, 2, 37)
float16 = DType("float16", np.float16, 10, 42)
float32 = DType("float32", np.float32, 1, 43)
float64 = DType("float64", np.float64, 11, 44)

ALL = (bool_, int8, int16, int32, int64, uint8, float16, float32, float64)
_BY_NAME = {d.name: d for d in ALL}
_BY_NP = {d.np: d for d in ALL}
_BY_MINDIR = {d.mindir: d for d in ALL}
_BY_MINDIR[17] = float64  # FLOAT64, a second spelling of DOUBLE in newer protos
_BY_MS = {d.ms_type_id: d for d in ALL}


def from_name(name: str) -> DType:
    return _BY_NAME[name]


def from_numpy(np_type) -> DType:
    """The DType of a NumPy dtype; raises KeyError for types todkit has no row for."""
    return _BY_NP[np.dtype(np_type)]


def from_mindir(code: int) -> DType | None:
    return _BY_MINDIR.get(code)


def from_ms(code: int) -> DType | None:
    return _BY_MS.get(code)


def as_dtype(x) -> DType:
    """Accept a DType, a NumPy dtype or type, or a name."""
    if isinstance(x, DType):
        return x
    if isinstance(x, str) and x in _BY_NAME:
        return _BY_NAME[x]
    return from_numpy(x)
