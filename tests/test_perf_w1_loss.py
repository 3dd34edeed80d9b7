"""The sparse softmax cross-entropy kernels of issue 6 (W1/W7): one-hot mask and argmax row
maxima in planned workspaces instead of fancy-index temporaries, the loss and its is_grad
node sharing the log-softmax and the mask. Checked against the float64 reference
(tests/opset_reference.py) and through the device runtime, where the second node finds the
shared workspaces filled; bad labels still raise a clear error."""

from __future__ import annotations

import numpy as np
import pytest

from tests.opset_reference import REFERENCE
from tests.test_runtime_graphs import BATCH, OUT, batches, train_graph
from todkit.core import dtypes
from todkit.core.errors import OpExecuteError
from todkit.ir.graph import TensorType
from todkit.opset.interpret import interpret
from todkit.opset.registry import WORKSPACE_FILLED, get_op
from todkit.runtime import Session

OP = "SparseSoftmaxCrossEntropyWithLogits"
KERNEL = get_op(OP).kernel


@pytest.mark.parametrize("shape", [(32, 10), (16, 10), (1, 1), (7, 2), (5, 300)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("label_dtype", [np.int32, np.int64, np.uint8])
def test_kernel_matches_the_reference(shape, dtype, label_dtype):
    rng = np.random.default_rng(sum(shape))
    n, c = shape
    logits = (rng.standard_normal(shape) * 20).astype(dtype)
    labels = rng.integers(0, c, n).astype(label_dtype)
    for is_grad in (False, True):
        out = np.empty(shape if is_grad else (), dtype)
        KERNEL([logits, labels], [out], {"is_grad": is_grad}, None)
        (want,) = REFERENCE[OP]([logits, labels], {"is_grad": is_grad})
        tol = 1e-5 if dtype == np.float32 else 1e-12
        np.testing.assert_allclose(out, want, rtol=tol, atol=tol)


def test_second_node_reads_the_shared_workspaces():
    """The is_grad node fills the log-softmax and mask; the loss node, told they are filled,
    must give the loss of the same logits and labels (and not touch them)."""
    rng = np.random.default_rng(3)
    logits = rng.standard_normal((8, 5)).astype(np.float32)
    labels = rng.integers(0, 5, 8).astype(np.int32)
    types = get_op(OP).workspace_types
    ws = [np.empty(t.shape, t.dtype.np) for t in types(
        [_tt(logits), _tt(labels)], {"is_grad": True})]
    grad = np.empty_like(logits)
    KERNEL([logits, labels], [grad] + ws, {"is_grad": True}, None)
    loss = np.empty((), np.float32)
    garbage = np.full_like(logits, np.nan)  # the loss's own exp scratch: unused when filled
    KERNEL([np.full_like(logits, np.nan), labels], [loss] + ws + [garbage],
           {"is_grad": False, WORKSPACE_FILLED: frozenset({0, 1})}, None)
    (want,) = REFERENCE[OP]([logits, labels], {"is_grad": False})
    np.testing.assert_allclose(loss, want, rtol=1e-6)


def _tt(a):
    return TensorType(a.shape, dtypes.from_numpy(a.dtype))


@pytest.mark.parametrize("bad", [OUT, -1, 200])
def test_a_label_out_of_range_raises_naming_the_range(bad):
    s = Session(train_graph("sgd"))
    x, y = batches(1)[0]
    y = y.copy()
    y[-1] = bad
    s.array(s.inputs[0])[...] = x
    s.array(s.inputs[1])[...] = y
    before = {c.name: c.data.copy() for c in s.graph.consts}
    with pytest.raises(OpExecuteError, match=rf"labels must lie in \[0, {OUT}\).*{bad}"):
        s.run_step()
    for c in s.graph.consts:  # nothing was updated
        np.testing.assert_array_equal(c.data, before[c.name], err_msg=c.name)


def test_runtime_steps_equal_the_interpreter():
    g, ref = train_graph("adam"), train_graph("adam")
    s = Session(g)
    for x, y in batches(3):
        s.array(s.inputs[0])[...] = x
        s.array(s.inputs[1])[...] = y
        s.run_step()
        (want,) = interpret(ref, dict(zip(ref.inputs, [x, y])))
        np.testing.assert_allclose(s.array(s.roles.train_outputs[0]), want, rtol=1e-6)
    for c, r in zip(g.consts, ref.consts):
        np.testing.assert_allclose(c.data, r.data, rtol=1e-6, atol=1e-7, err_msg=c.name)
    assert len(y) == BATCH


@pytest.mark.parametrize("label_dtype", [np.int8, np.int32, np.uint8, np.int64])
@pytest.mark.parametrize("c", [3, 1500])
def test_kernel_raises_on_labels_out_of_range(label_dtype, c):
    """Both one-hot forms (identity rows for <= 1024 classes and labels of <= 32 bits, the
    compare and count otherwise) reject labels below 0 and at or above C."""
    logits = np.zeros((4, c), np.float32)
    info = np.iinfo(label_dtype)
    for bad in (v for v in (c, -1) if info.min <= v <= info.max):
        labels = np.array([0, 1, bad, 2], label_dtype)
        for is_grad in (False, True):
            out = np.empty((4, c) if is_grad else (), np.float32)
            with pytest.raises(ValueError, match=rf"labels must lie in \[0, {c}\)"):
                KERNEL([logits, labels], [out], {"is_grad": is_grad}, None)
