"""MindSpore's ``.ckpt`` files: ``save_checkpoint``, ``load_checkpoint`` and
``load_param_into_net`` with MindSpore 2.x's signatures and file layout.

A file is a run of serialized ``Checkpoint`` messages (checkpoint.proto), one per parameter
(or per 512 MiB chunk of a larger one), each holding one ``Value``: the parameter's name as
``tag``, its shape as ``dims`` (empty for a scalar; older files write ``[0]``), MindSpore's dtype
name (``Float32``...) and the raw little-endian bytes. Strings from ``append_dict`` are stored as
NumPy's UTF-32 ``U`` arrays with type ``str`` and dims ``[0]``.
"""

from __future__ import annotations

import math
import numbers
import os
import stat
from collections import OrderedDict

import numpy as np

from todkit.core import dtypes
from todkit.core.errors import GraphFileError
from todkit.core.fileio import atomic_write
from todkit.frontend.cell import Cell
from todkit.frontend.parameter import Parameter
from todkit.frontend.tensor import Tensor
from todkit.train.checkpoint_pb2 import Checkpoint


class CheckpointError(GraphFileError, ValueError):
    """A checkpoint that cannot be read. A ``ValueError`` as MindSpore raises, and a todkit
    ``GraphFileError`` (code -200) naming the file."""


# MindSpore's tensor_type strings (str(mstype.X)) and the NumPy types they hold.
_NP_OF_TYPE = {"Int8": np.int8, "UInt8": np.uint8, "Int16": np.int16, "UInt16": np.uint16,
               "Int32": np.int32, "UInt32": np.uint32, "Int64": np.int64, "UInt64": np.uint64,
               "Float16": np.float16, "Float32": np.float32, "Float64": np.float64,
               "Bool": np.bool_}
_TYPE_OF_NP = {np.dtype(v): k for k, v in _NP_OF_TYPE.items()}
# The ones todkit's Tensor holds (no UInt16/32/64): the others are saved, not loaded.
_LOADABLE = {np.dtype(d.np) for d in dtypes.ALL}
# MindSpore writes tensors in chunks of 512 MiB (SLICE_SIZE KB * 1024).
CHUNK_BYTES = 512 * 1024 * 1024
MAX_DIMS = 32  # NumPy's limit before 2.0


def _ckpt_name_for_save(name) -> str:
    if not isinstance(name, str):
        raise TypeError(f"save_checkpoint: ckpt_file_name must be a str, got {type(name).__name__}")
    path = os.path.abspath(name)
    if os.path.isdir(path):
        raise IsADirectoryError(f"save_checkpoint: ckpt_file_name {name!r} is a directory")
    return path if path.endswith(".ckpt") else path + ".ckpt"


def _entries(save_obj, choice_func) -> list[tuple[str, object]]:
    """(name, Parameter | Tensor | str) pairs from a Cell, a list of Parameters or of
    {'name', 'data'} dicts, or a dict (what load_checkpoint returns)."""
    keep = (lambda n: True) if choice_func is None else choice_func
    if isinstance(save_obj, Cell):
        return [(p.name, p) for _, p in save_obj.parameters_and_names() if keep(p.name)]
    if isinstance(save_obj, dict):
        out = []
        for k, v in save_obj.items():
            if not isinstance(k, str) or not isinstance(v, (Parameter, str)):
                raise TypeError(f"save_checkpoint: a dict must map str to Parameter or str, got "
                                f"{type(k).__name__} -> {type(v).__name__}")
            if keep(k):
                out.append((k, v))
        return out
    if isinstance(save_obj, list):
        out = []
        for item in save_obj:
            if isinstance(item, dict):
                name, data = item["name"], item["data"]
            elif isinstance(item, Parameter):
                name, data = item.name, item
            else:
                raise TypeError(f"save_checkpoint: a list must hold Parameters or "
                                f"{{'name', 'data'}} dicts, got {type(item).__name__}")
            if keep(name):
                out.append((name, data))
        return out
    raise TypeError(f"save_checkpoint: save_obj must be a Cell, list or dict, got "
                    f"{type(save_obj).__name__}")


def _append_entries(append_dict) -> list[tuple[str, object]]:
    if append_dict is None:
        return []
    if not isinstance(append_dict, dict):
        raise TypeError(f"save_checkpoint: append_dict must be a dict, got "
                        f"{type(append_dict).__name__}")
    out = []
    for k, v in append_dict.items():
        if not isinstance(k, str) or not isinstance(v, (numbers.Number, str, Tensor)):
            raise TypeError(f"save_checkpoint: append_dict[{k!r}] must be int, float, bool, str, "
                            f"Parameter or Tensor, got {type(v).__name__}")
        out.append((k, v if isinstance(v, (str, Tensor)) else Tensor(v)))
    return out


def _records(name: str, data) -> list[bytes]:
    """The serialized Checkpoint messages for one entry."""
    if isinstance(data, str):
        dims, type_name, content = [0], "str", np.array(data).tobytes()
        chunks = [content]
    else:
        # np.asarray, not ascontiguousarray: the latter turns a scalar into shape [1].
        arr = np.asarray(data.asnumpy() if isinstance(data, Tensor) else data, order="C")
        type_name = _TYPE_OF_NP.get(arr.dtype)
        if type_name is None:
            raise TypeError(f"save_checkpoint: parameter {name!r} has dtype {arr.dtype}, which a "
                            ".ckpt cannot hold")
        dims = list(arr.shape)
        raw = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        chunks = [raw[i:i + CHUNK_BYTES] for i in range(0, len(raw), CHUNK_BYTES)] or [b""]
    out = []
    for chunk in chunks:
        msg = Checkpoint()
        value = msg.value.add()
        value.tag = name
        value.tensor.dims.extend(dims)
        value.tensor.tensor_type = type_name
        value.tensor.tensor_content = chunk
        out.append(msg.SerializeToString())
    return out


def save_checkpoint(save_obj, ckpt_file_name, integrated_save=True, async_save=False,
                    append_dict=None, enc_key=None, enc_mode="AES-GCM", choice_func=None,
                    **kwargs):
    """Write ``save_obj``'s parameters to ``ckpt_file_name`` (``.ckpt`` is appended if
    missing). As MindSpore, an existing file is replaced and the new one is made read-only."""
    if enc_key is not None:
        raise NotImplementedError("save_checkpoint: encrypted checkpoints (enc_key) are not "
                                  "supported")
    if kwargs.get("format", "ckpt") != "ckpt":
        raise NotImplementedError(f"save_checkpoint: format {kwargs['format']!r} is not "
                                  "supported; todkit writes 'ckpt'")
    path = _ckpt_name_for_save(ckpt_file_name)
    entries = OrderedDict(_entries(save_obj, choice_func))
    entries.update(_append_entries(append_dict))
    blobs = [b for name, data in entries.items() for b in _records(name, data)]
    # Crash-safe: the old checkpoint stays whole until the new one is complete (the rename
    # replaces a read-only file too, as it needs only the folder to be writable).
    atomic_write(path, b"".join(blobs))
    os.chmod(path, stat.S_IRUSR)
    return path


def _check_prefix(prefix, arg: str):
    if prefix is None:
        return None
    if isinstance(prefix, str):
        prefix = (prefix,)
    if not isinstance(prefix, (list, tuple)) or not prefix or \
            not all(isinstance(p, str) and p for p in prefix):
        raise TypeError(f"load_checkpoint: {arg} must be a non-empty str or a list of them, "
                        f"got {prefix!r}")
    return tuple(prefix)


def _parse(path: str) -> Checkpoint:
    msg = Checkpoint()
    try:
        with open(path, "rb") as f:
            msg.ParseFromString(f.read())
    except Exception as e:
        raise CheckpointError(f"Failed to read the checkpoint file {path}: not a MindSpore "
                              f"checkpoint ({type(e).__name__}: {e})") from e
    return msg


def _to_value(tag: str, type_name: str, dims, content: bytes):
    if type_name == "str":
        if not content or len(content) % 4:
            raise CheckpointError(f"parameter {tag!r}: a str value needs a whole number of UTF-32 "
                                  f"characters, got {len(content)} bytes")
        try:
            return content.decode("utf-32-le")
        except UnicodeDecodeError as e:
            raise CheckpointError(f"parameter {tag!r}: the str value is not UTF-32") from e
    np_type = _NP_OF_TYPE.get(type_name)
    if np_type is None:
        raise CheckpointError(f"parameter {tag!r} has tensor_type {type_name!r}, which todkit "
                              f"cannot load (known: {sorted(_NP_OF_TYPE)} and 'str')")
    if np.dtype(np_type) not in _LOADABLE:
        raise CheckpointError(f"parameter {tag!r} has tensor_type {type_name!r}, which a todkit "
                              f"Tensor cannot hold")
    shape = () if list(dims) in ([], [0]) else tuple(int(d) for d in dims)
    if any(d < 0 for d in shape):
        raise CheckpointError(f"parameter {tag!r} has negative dims {list(shape)}")
    count = math.prod(shape)  # Python ints: no int64 wrap-around for hostile dims
    itemsize = np.dtype(np_type).itemsize
    if len(content) != count * itemsize:
        raise CheckpointError(f"parameter {tag!r}: {len(content)} bytes of {type_name} for shape "
                              f"{list(shape)} (needs {count * itemsize})")
    # Only an empty tensor gets here with dims NumPy refuses: too many, or whose product
    # before the 0 overflows (e.g. [2**63 - 1, 3, 0]).
    if len(shape) > MAX_DIMS or math.prod(d for d in shape if d) * itemsize >= 2**63:
        raise CheckpointError(f"parameter {tag!r} has dims {list(shape)}, which no tensor can "
                              f"have (at most {MAX_DIMS} dims, each product under 2**63 bytes)")
    arr = np.frombuffer(content, np.dtype(np_type).newbyteorder("<"))
    return Parameter(Tensor(arr.reshape(shape).astype(np_type)), name=tag)


def load_checkpoint(ckpt_file_name, net=None, strict_load=False, filter_prefix=None,
                    dec_key=None, dec_mode="AES-GCM", specify_prefix=None, choice_func=None):
    """{name: Parameter (or str)} from a ``.ckpt``; loads it into ``net`` too if given."""
    if dec_key is not None:
        raise NotImplementedError("load_checkpoint: encrypted checkpoints (dec_key) are not "
                                  "supported")
    if not isinstance(ckpt_file_name, str):
        raise TypeError(f"load_checkpoint: ckpt_file_name must be a str, got "
                        f"{type(ckpt_file_name).__name__}")
    if not ckpt_file_name.endswith(".ckpt"):
        raise CheckpointError("load_checkpoint: the checkpoint file should end with '.ckpt', got "
                              f"{ckpt_file_name!r}")
    path = os.path.abspath(ckpt_file_name)
    if not os.path.exists(path):
        raise CheckpointError(f"load_checkpoint: the checkpoint file {path} does not exist")
    specify, filt = _check_prefix(specify_prefix, "specify_prefix"), _check_prefix(
        filter_prefix, "filter_prefix")
    if os.path.isdir(path):
        raise CheckpointError(f"load_checkpoint: {path} is a directory, not a checkpoint file")
    values = list(_parse(path).value)
    try:
        out = _collect(values, specify, filt, choice_func)
    except ValueError as e:
        raise CheckpointError(f"{e}\nFor 'load_checkpoint', failed to load the checkpoint file "
                              f"{path}.") from e
    if not out:
        raise CheckpointError(f"load_checkpoint: no parameter loaded from {path} (the file is "
                              "empty, or every entry was filtered out)")
    if net is not None:
        load_param_into_net(net, out, strict_load)
    return out


def _collect(values, specify, filt, choice_func) -> dict:
    out: dict = {}
    chunks: list[bytes] = []
    for i, v in enumerate(values):
        if not isinstance(v.tag, str):  # proto2 hands back bytes for a tag that is not UTF-8
            raise CheckpointError(f"a parameter name is not UTF-8: {v.tag!r}")
        if (specify and not v.tag.startswith(specify)) or (filt and v.tag.startswith(filt)):
            continue
        if specify is None and filt is None and choice_func is not None and not choice_func(
                v.tag):
            continue
        if v.WhichOneof("value") != "tensor":
            raise CheckpointError(f"load_checkpoint: {v.tag!r} is a MapParameter, which "
                                  "todkit does not support")
        chunks.append(v.tensor.tensor_content)
        if i + 1 < len(values) and values[i + 1].tag == v.tag:
            continue  # a chunk of a large tensor: the next Value continues it
        out[v.tag] = _to_value(v.tag, v.tensor.tensor_type, v.tensor.dims, b"".join(chunks))
        chunks = []
    return out


def _fits_by_trailing_ones(param: Parameter, new: np.ndarray) -> bool:
    """MindSpore's special case: (12, 2048, 1, 1) in the file loads into (12, 2048)."""
    old, extra = param.shape, new.shape[len(param.shape):]
    return new.ndim > len(old) and new.shape[:len(old)] == old and all(d == 1 for d in extra)


def _update_param(param: Parameter, new: Parameter, strict_load: bool) -> None:
    arr = new.asnumpy()
    if arr.shape != param.shape:
        if not _fits_by_trailing_ones(param, arr):
            raise RuntimeError(f"load_param_into_net: {param.name} has shape {param.shape} in the "
                               f"net but {arr.shape} in the parameter dict")
        arr = arr.reshape(param.shape)
    old_t, new_t = np.dtype(param.dtype.np), arr.dtype
    if old_t != new_t:
        same_kind = {old_t.kind, new_t.kind} <= {"f"} or {old_t.kind, new_t.kind} <= {"i"}
        if strict_load or not same_kind:
            raise RuntimeError(f"load_param_into_net: {param.name} has dtype {param.dtype.name} in "
                               f"the net but {new.dtype.name} in the parameter dict")
        arr = arr.astype(old_t)
    param.set_data(arr)


def load_param_into_net(net, parameter_dict, strict_load=False):
    """Copy parameters from ``parameter_dict`` into ``net`` by name (in place, so graphs already
    traced see the new values). Returns (net parameters not loaded, dict entries not loaded).
    Unless ``strict_load``, a name that misses is retried with the prefix the dict's names
    carry (a checkpoint of a wrapper loads into its backbone), as MindSpore does."""
    if not isinstance(net, Cell):
        raise TypeError(f"load_param_into_net: net must be a Cell, got {type(net).__name__}")
    if not isinstance(parameter_dict, dict):
        raise TypeError(f"load_param_into_net: parameter_dict must be a dict, got "
                        f"{type(parameter_dict).__name__}")
    for k, v in parameter_dict.items():
        if not isinstance(k, str) or not isinstance(v, (Parameter, str)):
            raise TypeError(f"load_param_into_net: parameter_dict must map str to Parameter, got "
                            f"{type(k).__name__} -> {type(v).__name__}")
    params = [p for _, p in net.parameters_and_names()]
    not_loaded, ckpt_left = [], [k for k, v in parameter_dict.items()]
    for p in params:
        new = parameter_dict.get(p.name)
        if isinstance(new, Parameter):
            _update_param(p, new, strict_load)
            ckpt_left.remove(p.name)
        elif new is None:
            not_loaded.append(p.name)
    if not_loaded and not strict_load:
        _load_with_prefix(params, parameter_dict, not_loaded, strict_load)
    return not_loaded, ckpt_left


def _load_with_prefix(params, parameter_dict, not_loaded, strict_load) -> None:
    """The dict's names are the net's with one extra prefix (``network.`` ...): find it from
    the first name that matches by suffix and load everything that matches with it."""
    prefix = None
    for name in not_loaded:
        prefix = next((k[:-len(name)] for k in parameter_dict if k.endswith(name)), None)
        if prefix is not None:
            break
    if not prefix:
        return
    for p in params:
        new = parameter_dict.get(prefix + p.name)
        if p.name in not_loaded and isinstance(new, Parameter):
            _update_param(p, new, strict_load)
            not_loaded.remove(p.name)
