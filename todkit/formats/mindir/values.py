"""MINDIR values <-> Python: tensors, attribute values, and the per-node ``shape`` abstracts.

Encodings follow what MindSpore 2.10 writes (reference/mindir_in_practice.md): top-level
BOOL/INT64 scalars in ``i``, FLOAT in ``f``, STRING in ``s``; elements of a TUPLE/LIST use the
repeated field (``ints: [v]``), which MindSpore Lite's loader insists on; tensors as TENSORS with
``raw_data``; the side-effect seed as UMONAD.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from todkit.core import dtypes
from todkit.core.dtypes import DType
from todkit.core.errors import GraphFileError, NotSupportedError
from todkit.formats.mindir.schema import AttrType, pb
from todkit.ir.graph import TensorType


class Monad:
    """The side-effect state U (UMONAD constants, UpdateState results): never data."""

    __repr__ = lambda self: "U"


MONAD = Monad()


# -- tensors -------------------------------------------------------------------------------
def tensor_dtype(t: pb.TensorProto, where: str) -> DType:
    dt = dtypes.from_mindir(t.data_type)
    if dt is None:
        name = pb.TensorProto.DataType.Name(t.data_type) if t.data_type in \
            pb.TensorProto.DataType.values() else str(t.data_type)
        raise NotSupportedError(f"{where}: tensor data type {name} is not supported")
    return dt


def element_count(dims, where: str) -> int:
    """Elements of a tensor of ``dims``, in Python ints so huge dims cannot wrap around to a
    size that matches the bytes present; negative dims are refused."""
    dims = [int(d) for d in dims]
    if any(d < 0 for d in dims):
        raise GraphFileError(f"{where}: tensor dims {dims} are negative")
    count = 1
    for d in dims:
        count *= d
    return count


def tensor_to_numpy(t: pb.TensorProto, where: str) -> np.ndarray:
    """The array a TensorProto holds (``raw_data`` as MindSpore writes it, or typed fields).

    The declared dims are checked against the bytes the file really holds before anything is
    allocated from them."""
    if t.HasField("external_data"):
        raise NotSupportedError(f"{where}: tensor data kept in an external file "
                                f"({t.external_data.location!r}) is not supported")
    dt = tensor_dtype(t, where)
    shape = tuple(int(d) for d in t.dims)
    count = element_count(shape, where)
    if t.HasField("raw_data"):
        raw = t.raw_data
        if len(raw) != count * dt.itemsize:
            raise GraphFileError(f"{where}: raw_data holds {len(raw)} bytes, "
                                 f"{dt.name}{list(shape)} needs {count * dt.itemsize}")
        arr = np.frombuffer(raw, dtype=dt.np.newbyteorder("<")).astype(dt.np)
    else:
        typed = (t.float_data or t.int32_data or t.int64_data or t.double_data
                 or t.uint64_data)
        if len(typed) != count:
            raise GraphFileError(f"{where}: tensor has {len(typed)} values for {list(shape)}")
        arr = np.asarray(list(typed)).astype(dt.np)
    return np.array(arr.reshape(shape), order="C")


def numpy_to_tensor(t: pb.TensorProto, arr: np.ndarray) -> None:
    dt = dtypes.from_numpy(arr.dtype)
    t.dims.extend(int(d) for d in arr.shape)
    t.data_type = dt.mindir
    t.raw_data = np.ascontiguousarray(arr, dtype=dt.np.newbyteorder("<")).tobytes()


# -- attribute values ----------------------------------------------------------------------
_SCALAR_NP = {AttrType.BOOL: np.bool_, AttrType.INT64: np.int64, AttrType.INT32: np.int32,
              AttrType.FLOAT: np.float32, AttrType.DOUBLE: np.float64, AttrType.INT8: np.int8,
              AttrType.UINT8: np.uint8, AttrType.INT16: np.int16, AttrType.FLOAT16: np.float16}
_INT_TYPES = (AttrType.INT8, AttrType.INT16, AttrType.INT32, AttrType.INT64, AttrType.UINT8,
              AttrType.UINT16, AttrType.UINT32, AttrType.UINT64)


def decode(a: pb.AttributeProto, where: str) -> Any:
    """Python value of an attribute: bool, int, float, str, tuple, ndarray, None or MONAD.

    Scalars inside a TUPLE/LIST sit in the repeated fields; top-level ones in i/f/s."""
    t = a.type
    if t == AttrType.BOOL:
        return bool(a.ints[0] if a.ints and not a.HasField("i") else a.i)
    if t in _INT_TYPES:
        return int(a.ints[0] if a.ints and not a.HasField("i") else a.i)
    if t in (AttrType.FLOAT, AttrType.FLOAT16, AttrType.BFLOAT16):
        return float(a.floats[0] if a.floats and not a.HasField("f") else a.f)
    if t == AttrType.DOUBLE:
        return float(a.doubles[0] if a.doubles and not a.HasField("d") else a.d)
    if t == AttrType.STRING:
        raw = a.strings[0] if a.strings and not a.HasField("s") else a.s
        return raw.decode("utf-8", "replace")
    if t in (AttrType.TUPLE, AttrType.LIST):
        return tuple(decode(v, where) for v in a.values)
    if t in (AttrType.TENSORS, AttrType.TENSOR):
        tensor = a.tensors[0] if a.tensors else a.t
        return tensor_to_numpy(tensor, where)
    if t in (AttrType.UMONAD, AttrType.IOMONAD):
        return MONAD
    if t == AttrType.NONE:
        return None
    raise NotSupportedError(f"{where}: attribute {a.name!r} of type "
                            f"{AttrType.Name(t) if t in AttrType.values() else t} is not supported")


def scalar_array(a: pb.AttributeProto, value) -> np.ndarray:
    """A 0-d array for a scalar Constant used as a tensor input, typed as the file says."""
    return np.array(value, dtype=_SCALAR_NP.get(a.type, None))


def _set_scalar(a: pb.AttributeProto, value, element: bool) -> None:
    """Fill ``a`` with a scalar; ``element`` (inside a TUPLE/LIST) uses the repeated field."""
    if isinstance(value, (bool, np.bool_)):
        a.type, value = AttrType.BOOL, int(value)
    elif isinstance(value, (int, np.integer)):
        a.type, value = AttrType.INT64, int(value)
    elif isinstance(value, (float, np.floating)):
        a.type, value = AttrType.FLOAT, float(value)
    elif isinstance(value, str):
        a.type, value = AttrType.STRING, value.encode()
    else:
        raise TypeError(f"cannot encode {value!r} as a MINDIR attribute")
    scalar, repeated = {AttrType.BOOL: ("i", "ints"), AttrType.INT64: ("i", "ints"),
                        AttrType.FLOAT: ("f", "floats"), AttrType.STRING: ("s", "strings")}[a.type]
    if element:
        getattr(a, repeated).append(value)
    else:
        setattr(a, scalar, value)


def encode(a: pb.AttributeProto, value, seq: str = "TUPLE") -> pb.AttributeProto:
    """Fill ``a`` with a Python value (scalar, str, tuple/list, ndarray, MONAD)."""
    if value is MONAD:
        a.type = AttrType.UMONAD
    elif isinstance(value, np.ndarray):
        a.type = AttrType.TENSORS
        t = a.tensors.add()
        numpy_to_tensor(t, value)
        t.name = "value0"
    elif isinstance(value, (tuple, list)):
        a.type = AttrType.LIST if (seq == "LIST" or isinstance(value, list)) else AttrType.TUPLE
        for v in value:  # nested sequences (Pad's paddings pairs) stay nested
            if isinstance(v, (tuple, list)):
                encode(a.values.add(), v, seq)
            else:
                _set_scalar(a.values.add(), v, element=True)
    else:
        _set_scalar(a, value, element=False)
    return a


# -- abstracts (a node's ``shape`` attribute) ----------------------------------------------
def decode_abstract(a: pb.AttributeProto, where: str) -> list[TensorType] | None:
    """Output types from a ``shape`` attribute; None where it holds no tensor types."""
    if a.type == AttrType.TENSORS and a.tensors:
        t = a.tensors[0]
        return [TensorType(tuple(t.dims), tensor_dtype(t, where))]
    if a.type == AttrType.TUPLE:
        out: list[TensorType] = []
        for v in a.values:
            sub = decode_abstract(v, where)
            if sub is None or len(sub) != 1:
                return None
            out.extend(sub)
        return out
    return None


def encode_tensor_abstract(a: pb.AttributeProto, t: TensorType) -> None:
    a.type = AttrType.TENSORS
    x = a.tensors.add()
    x.dims.extend(t.shape)
    x.data_type = t.dtype.mindir


def encode_abstract(a: pb.AttributeProto, types: list[TensorType], as_tuple: bool) -> None:
    a.name = "shape"
    if not as_tuple:
        encode_tensor_abstract(a, types[0])
        return
    a.type = AttrType.TUPLE
    for t in types:
        encode_tensor_abstract(a.values.add(), t)
    a.seq_info.is_dyn_len = False


def encode_special_abstract(a: pb.AttributeProto, kind: str) -> None:
    """``UMONAD`` (UpdateState), ``SCALAR`` bool (Depend(True, effect)) as MindSpore writes."""
    a.name = "shape"
    if kind == "UMONAD":
        a.type = AttrType.UMONAD
    else:
        a.type = AttrType.SCALAR
        x = a.tensors.add()
        x.dims.append(0)
        x.data_type = dtypes.bool_.mindir
