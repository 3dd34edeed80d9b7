"""mindspore_lite.Tensor: a named view of a model tensor, or a free tensor the user fills.

A model tensor wraps the runtime's own array (an arena view for inputs and outputs), so
``set_data_from_numpy`` copies straight into the planned memory and ``get_data_to_numpy``
returns a copy that later steps do not change.
"""

from __future__ import annotations

import enum

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import InputTensorError, ParamError


class DataType(enum.IntEnum):
    """mindspore_lite.DataType: MindSpore TypeId values (as .ms Tensor.dataType)."""

    UNKNOWN = 0
    BOOL = 30
    INT8 = 32
    INT16 = 33
    INT32 = 34
    INT64 = 35
    UINT8 = 37
    UINT16 = 38
    UINT32 = 39
    UINT64 = 40
    FLOAT16 = 42
    FLOAT32 = 43
    FLOAT64 = 44
    INVALID = 2147483647


class Format(enum.IntEnum):
    """mindspore_lite.Format (the .ms schema's Format enum; DEFAULT = unset)."""

    DEFAULT = -1
    NCHW = 0
    NHWC = 1
    NHWC4 = 2
    HWKC = 3
    HWCK = 4
    KCHW = 5
    CKHW = 6
    KHWC = 7
    CHWK = 8
    HW = 9
    HW4 = 10
    NC = 11
    NC4 = 12
    NC4HW4 = 13
    NCDHW = 15
    NWC = 16
    NCW = 17


def _data_type(np_dtype) -> DataType:
    try:
        return DataType(dtypes.from_numpy(np_dtype).ms_type_id)
    except (KeyError, ValueError):
        return DataType.UNKNOWN


class Tensor:
    def __init__(self, tensor=None, shape=None, dtype=None, *, name: str = "",
                 _array: np.ndarray | None = None, _format: str = "NCHW", _writable=True):
        self._name = name
        self._format = Format[_format] if _format in Format.__members__ else Format.DEFAULT
        self._writable = _writable
        self._bound = _array is not None  # a model tensor: data goes into the model's array
        if _array is not None:
            self._array = _array
        elif tensor is not None:
            self._array = np.array(tensor, order="C")
        else:
            np_dtype = dtypes.as_dtype(dtype).np if dtype is not None else np.float32
            self._array = np.zeros(tuple(shape or ()), dtype=np_dtype)

    # -- metadata (properties as mindspore_lite 2.1+, get_* as 2.0) ----------------------
    @property
    def name(self) -> str:
        return self._name

    @name.setter
    def name(self, value: str) -> None:
        self._name = str(value)

    @property
    def shape(self) -> list[int]:
        return list(self._array.shape)

    @property
    def dtype(self) -> DataType:
        return _data_type(self._array.dtype)

    @property
    def format(self) -> Format:
        return self._format

    @property
    def element_num(self) -> int:
        return int(self._array.size)

    @property
    def data_size(self) -> int:
        return int(self._array.nbytes)

    def get_tensor_name(self) -> str:
        return self.name

    def get_shape(self) -> list[int]:
        return self.shape

    def get_data_type(self) -> DataType:
        return self.dtype

    def get_format(self) -> Format:
        return self.format

    def get_element_num(self) -> int:
        return self.element_num

    def get_data_size(self) -> int:
        return self.data_size

    # -- data ------------------------------------------------------------------------------
    def set_data_from_numpy(self, numpy_obj) -> None:
        if not isinstance(numpy_obj, np.ndarray):
            raise ParamError(f"tensor {self._name!r}: set_data_from_numpy takes a numpy.ndarray, "
                             f"got {type(numpy_obj).__name__}")
        if not self._bound:
            self._array = np.array(numpy_obj, order="C")  # a free tensor takes any data
            return
        if not self._writable:
            raise InputTensorError(f"tensor {self._name!r} is not a model input; its data is "
                                   "computed by the model")
        want = self._array
        if numpy_obj.dtype != want.dtype:
            raise InputTensorError(f"tensor {self._name!r} expects dtype {want.dtype}, got "
                                   f"{numpy_obj.dtype}")
        if numpy_obj.shape != want.shape:
            raise InputTensorError(f"tensor {self._name!r} expects shape {list(want.shape)}, got "
                                   f"{list(numpy_obj.shape)}")
        np.copyto(want, numpy_obj)

    def get_data_to_numpy(self) -> np.ndarray:
        return self._array.copy()

    def __repr__(self) -> str:
        return (f"Tensor(name={self._name!r}, shape={self.shape}, dtype={self.dtype.name}, "
                f"format={self.format.name})")
