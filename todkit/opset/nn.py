"""Dense-layer ops: MatMul, BiasAdd and BiasAddGrad."""



from __future__ import annotations

import numpy as np

from todkit.ir.graph import TensorType
from todkit.opset.registry import OpDef, op


@op
class MatMul(OpDef):
    """2-D matrix product with optional transposes (MindSpore ``MatMul``)."""

    attrs = {"transpose_a": False, "transpose_b": False}

    def infer(ins, a):
        x, w = ins
        if len(x.shape) != 2 or len(w.shape) != 2:
            raise ValueError("MatMul takes 2-D inputs")
        m, k = x.shape[::-1] if a["transpose_a"] else x.shape
        k2, n = w.shape[::-1] if a["transpose_b"] else w.shape
        if k != k2:
            raise ValueError(f"inner dimensions differ ({k} vs {k2})")
        return [TensorType((m, n), x.dtype)]

    def kernel(ins, outs, a, rt):
        x, w = ins
        out = outs[0]
        x = x.T if a["transpose_a"] else x
        w = w.T if a["transpose_b"] else w
        if out.flags.c_contiguous and out.dtype == x.dtype == w.dtype and x.dtype.kind == "f":
            # np.dot goes to the same BLAS gemm with less dispatch (~0.3 us a call on
            # W1's products; the same bits on every shape and transpose checked).
            np.dot(x, w, out=out)
        else:
            np.matmul(x, w, out=out)

    def grad(g, node, douts):
        x, w = node.inputs
        return [product_grad(g, "MatMul", node, douts[0], 0) if g.wants(x) else None,
                product_grad(g, "MatMul", node, douts[0], 1) if g.wants(w) else None]


def product_grad(g, op: str, node, dy, k: int):
    """The gradient of operand ``k`` of y = op(x) @ op(w) (``op`` MatMul or BatchMatMul, with
    the node's transposes): dx = dy @ op(w)^T, dw = op(x)^T @ dy, transposed back if needed."""
    x, w = node.inputs
    ta, tb = node.attrs["transpose_a"], node.attrs["transpose_b"]
    if k == 0:
        if ta:
            return g.emit(op, [w, dy], transpose_a=tb, transpose_b=True)
        return g.emit(op, [dy, w], transpose_a=False, transpose_b=not tb)
    if tb:
        return g.emit(op, [dy, x], transpose_a=True, transpose_b=ta)
    return g.emit(op, [x, dy], transpose_a=not ta, transpose_b=False)


@op
class BiasAdd(OpDef):
    """Adds a 1-D bias along the channel axis (axis 1 for NCHW, the last for NHWC)."""

    attrs = {"data_format": "NCHW"}
    inplace = {0: 0}

    def infer(ins, a):
        x, b = ins
        c = x.shape[-1] if a["data_format"] == "NHWC" or len(x.shape) == 2 else x.shape[1]
        if b.shape != (c,):
            raise ValueError(f"bias shape {list(b.shape)} does not match {c} channels")
        return [x]

    def kernel(ins, outs, a, rt):
        x, b = ins
        if a["data_format"] == "NHWC" or x.ndim == 2:
            np.add(x, b, out=outs[0])
        else:
            np.add(x, b.reshape((-1,) + (1,) * (x.ndim - 2)), out=outs[0])

    def grad(g, node, douts):
        (dy,) = douts
        x, b = node.inputs
        db = None
        if g.wants(b):
            db = g.emit("BiasAddGrad", [dy], data_format=node.attrs["data_format"])
        return [dy if g.wants(x) else None, db]


@op
class BiasAddGrad(OpDef):
    """Sum of ``dy`` over every axis but the channel axis."""

    attrs = {"data_format": "NCHW"}

    def infer(ins, a):
        (dy,) = ins
        c = dy.shape[-1] if a["data_format"] == "NHWC" or len(dy.shape) == 2 else dy.shape[1]
        return [TensorType((c,), dy.dtype)]

    def kernel(ins, outs, a, rt):
        (dy,) = ins
        if dy.ndim == 2:  # the Dense case: one ufunc reduce, no axis tuple to build
            np.add.reduce(dy, axis=0, out=outs[0])
            return
        axis = dy.ndim - 1 if a["data_format"] == "NHWC" else 1
        np.sum(dy, axis=tuple(i for i in range(dy.ndim) if i != axis), out=outs[0])
