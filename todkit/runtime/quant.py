"""8-bit weight quantization of .ms buffers, in the layout MindSpore Lite's TrainExport writes
(src/train/train_export.cc, QuantTensorData) and its WeightDecoder reads back.

A quantized tensor keeps its name, dims and nodeType; ``dataType`` becomes int8 (32), ``data``
holds the int8 values and ``quantParams`` one entry per output channel (dim 0: Conv2D
``[O, C, kh, kw]`` and Dense ``[out, in]`` weights) with ``scale``, ``zeroPoint``, ``min``,
``max``, ``numBits`` 8 and ``inited`` true; ``real = scale * (q - zeroPoint)``. Nodes that read
a quantized constant get ``quantType`` QUANT_WEIGHT. As Lite with QT_WEIGHT, every constant
float32 tensor with more than one dimension is quantized (1-D biases and scalars stay float).
The loader dequantizes back to float32 before building the graph.
"""

from __future__ import annotations

import numpy as np

from todkit.core.errors import GraphFileError
from todkit.formats.ms import fbread, fbwrite, schema

INT8, FLOAT32 = 32, 43
NODE_TYPE_VALUE = 0
QUANT_NONE = schema.enum_value("QuantType", "QUANT_NONE")
QUANT_WEIGHT = schema.enum_value("QuantType", "QUANT_WEIGHT")
QMIN, QMAX = -128, 127


def quantize_channels(x: np.ndarray) -> tuple[np.ndarray, list[dict]]:
    """Asymmetric int8 per output channel (dim 0); each range includes 0 as Lite's does."""
    rows = x.reshape(x.shape[0], -1).astype(np.float64)
    q = np.empty(rows.shape, np.int8)
    params = []
    for c, row in enumerate(rows):
        lo, hi = min(0.0, float(row.min())), max(0.0, float(row.max()))
        scale = (hi - lo) / (QMAX - QMIN) or 1.0
        zero = int(np.clip(round(QMIN - lo / scale), QMIN, QMAX))
        q[c] = np.clip(np.rint(row / scale + zero), QMIN, QMAX)
        params.append({"scale": scale, "zeroPoint": zero, "min": lo, "max": hi,
                       "narrowRange": False, "numBits": 8, "inited": True})
    return q.reshape(x.shape), params


def dequantize(q: np.ndarray, params: list[dict], name: str, where: str) -> np.ndarray:
    """float32 values of an int8 tensor with per-channel (dim 0) or per-tensor params."""
    if len(params) == 1:
        scale, zero = np.float64(params[0]["scale"]), params[0]["zeroPoint"]
        return ((q.astype(np.float64) - zero) * scale).astype(np.float32)
    if q.ndim == 0 or len(params) != q.shape[0]:
        raise GraphFileError(f"{where}: tensor {name!r}: {len(params)} quantParams for shape "
                             f"{list(q.shape)} (want 1 or one per channel of dim 0)")
    scale = np.array([p["scale"] for p in params]).reshape((-1,) + (1,) * (q.ndim - 1))
    zero = np.array([p["zeroPoint"] for p in params]).reshape(scale.shape)
    return ((q.astype(np.float64) - zero) * scale).astype(np.float32)


def _tag_nodes(meta, tensors: set[int], quant_type: int) -> None:
    for n in meta.get("nodes", []):
        if any(int(i) in tensors for i in n.get("inputIndex", ())):
            n["quantType"] = quant_type


def quantize_weights(raw: bytes, where: str) -> bytes:
    """``raw`` (.ms bytes) with its multi-dimensional float32 constants in int8."""
    meta = fbread.decode(raw, where)
    done: set[int] = set()
    for i, t in enumerate(meta["allTensors"]):
        dims = [int(d) for d in t.get("dims", ())]
        if (t.get("nodeType") != NODE_TYPE_VALUE or t.get("dataType") != FLOAT32
                or len(dims) < 2 or t.get("data") is None or len(t["data"]) == 0):
            continue
        x = np.frombuffer(bytes(t["data"]), "<f4").reshape(dims)
        q, params = quantize_channels(x)
        t["data"], t["dataType"], t["quantParams"] = q.tobytes(), INT8, params
        done.add(i)
    _tag_nodes(meta, done, QUANT_WEIGHT)
    return fbwrite.encode(meta)


def dequantize_weights(raw: bytes, where: str) -> bytes | None:
    """``raw`` with every weight-quantized constant back in float32; None if it has none."""
    meta = fbread.decode(raw, where)
    done: set[int] = set()
    for i, t in enumerate(meta.get("allTensors", [])):
        params = t.get("quantParams") or []
        if t.get("nodeType") != NODE_TYPE_VALUE or not params or not params[0].get("inited"):
            continue
        name = t.get("name") or f"tensor_{i}"
        if t.get("dataType") != INT8:
            raise GraphFileError(f"{where}: tensor {name!r}: weight quantization of dataType "
                                 f"{t.get('dataType')} is not supported (int8 only)")
        dims = [int(d) for d in t.get("dims", ())]
        data = bytes(t["data"]) if t.get("data") is not None else b""
        if len(data) != int(np.prod(dims, dtype=np.int64)):
            raise GraphFileError(f"{where}: tensor {name!r}: {len(data)} bytes of int8 data "
                                 f"for dims {dims}")
        q = np.frombuffer(data, np.int8).reshape(dims)
        t["data"] = dequantize(q, params, name, where).astype("<f4").tobytes()
        t["dataType"], t["quantParams"] = FLOAT32, None
        done.add(i)
    if not done:
        return None
    _tag_nodes(meta, done, QUANT_NONE)
    return fbwrite.encode(meta)
