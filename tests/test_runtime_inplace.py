"""In-place outputs (``OpDef.inplace``): an output takes the buffer of an input that no later
node reads; the kernel still runs. What must never happen: a graph input, a value read
later or after the step, or a weight overwritten."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import train_graph
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit
from todkit.opset.interpret import interpret
from todkit.opset.registry import OPS
from todkit.opset.runctx import RunContext
from todkit.runtime import Session


@pytest.fixture
def relu_inplace(monkeypatch):
    monkeypatch.setattr(OPS["ReLU"], "inplace", {0: 0})


def chain_graph(extra_reader: bool = False) -> Graph:
    """x -> MatMul -> BiasAdd -> ReLU -> MatMul (-> Add of the first MatMul's output)."""
    rng = np.random.default_rng(3)
    g = Graph("chain")
    x = g.add_input("x", TensorType((4, 8), dtypes.float32))
    w1 = g.add_const("w1", rng.normal(size=(8, 8)).astype(np.float32), param=True)
    b1 = g.add_const("b1", rng.normal(size=(8,)).astype(np.float32), param=True)
    w2 = g.add_const("w2", rng.normal(size=(8, 8)).astype(np.float32), param=True)
    m = emit(g, "MatMul", [x, w1], name="mm1").outputs[0]
    b = emit(g, "BiasAdd", [m, b1], name="bias").outputs[0]
    r = emit(g, "ReLU", [b], name="relu").outputs[0]
    out = emit(g, "MatMul", [r, w2], name="mm2").outputs[0]
    if extra_reader:
        out = emit(g, "Add", [out, m], name="add").outputs[0]
    g.outputs = [out]
    return g


def run(g: Graph, x: np.ndarray):
    s = Session(g)
    s.array(g.inputs[0])[...] = x
    s.run_step()
    return s, s.array(g.outputs[0]).copy()


def value(g: Graph, name: str):
    return next(v for n in g.nodes if n.name == name for v in n.outputs)


def test_a_chain_runs_in_one_buffer_and_computes_the_same(relu_inplace):
    g = chain_graph()
    x = np.random.default_rng(0).normal(size=(4, 8)).astype(np.float32)
    s, got = run(g, x)
    ex = s.eval
    mm1, bias, relu = (ex.array(value(g, k)) for k in ("mm1", "bias", "relu"))
    assert np.shares_memory(mm1, bias) and np.shares_memory(bias, relu)
    np.testing.assert_allclose(got, interpret(g, {g.inputs[0]: x})[0], rtol=1e-6)
    s.run_step()  # the input was not overwritten: a second step gives the same
    np.testing.assert_array_equal(s.array(g.outputs[0]), got)


def test_a_value_read_later_keeps_its_buffer(relu_inplace):
    g = chain_graph(extra_reader=True)
    x = np.random.default_rng(1).normal(size=(4, 8)).astype(np.float32)
    s, got = run(g, x)
    ex = s.eval
    assert not np.shares_memory(ex.array(value(g, "mm1")), ex.array(value(g, "bias")))
    assert np.shares_memory(ex.array(value(g, "bias")), ex.array(value(g, "relu")))
    np.testing.assert_allclose(got, interpret(g, {g.inputs[0]: x})[0], rtol=1e-6)


def test_a_graph_input_is_never_overwritten(relu_inplace):
    g = Graph("input_relu")
    x = g.add_input("x", TensorType((4, 8), dtypes.float32))
    g.outputs = [emit(g, "ReLU", [x], name="relu").outputs[0]]
    data = np.linspace(-1, 1, 32, dtype=np.float32).reshape(4, 8)
    s, got = run(g, data)
    np.testing.assert_array_equal(s.array(x), data)
    np.testing.assert_array_equal(got, np.maximum(data, 0))


def test_train_steps_with_inplace_outputs_match_the_interpreter(relu_inplace):
    for opt in ("momentum", "adam"):
        ref, g = train_graph(opt), train_graph(opt)
        s = Session(g)
        rng = np.random.default_rng(5)
        x_in, y_in = g.inputs
        assert any(id(n.outputs[0]) in s.train.inplace for n in g.nodes if n.op == "BiasAdd")
        for _ in range(3):
            x = rng.normal(size=x_in.type.shape).astype(np.float32)
            y = rng.integers(0, 3, size=y_in.type.shape).astype(np.int32)
            s.array(x_in)[...] = x
            s.array(y_in)[...] = y
            s.run_step()
            interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y})
        for a, b in zip(g.consts, ref.consts):
            np.testing.assert_allclose(a.data, b.data, rtol=1e-5, atol=1e-6)


def frozen_block(training: bool) -> Graph:
    """A frozen backbone block as MobileNetV2's: 1x1 Conv2D -> BatchNorm -> ReLU6 -> Add."""
    rng = np.random.default_rng(4)
    g = Graph("block")
    x = g.add_input("x", TensorType((2, 6, 6, 4), dtypes.float32))
    w = g.add_const("w", rng.normal(size=(8, 1, 1, 4)).astype(np.float32))
    vec = [g.add_const(k, v.astype(np.float32)) for k, v in (
        ("gamma", rng.uniform(0.5, 2, 8)), ("beta", rng.normal(size=8)),
        ("mean", rng.normal(size=8)), ("var", rng.uniform(0.5, 2, 8)))]
    conv_attrs = {"format": "NHWC", "group": 1, "stride": (1, 1), "dilation": (1, 1),
                  "pad_mode": "valid", "pad_list": (0, 0, 0, 0), "kernel_size": (1, 1),
                  "out_channel": 8, "mode": 1}
    c = emit(g, "Conv2D", [x, w], conv_attrs, name="conv").outputs[0]
    bn = emit(g, "BatchNorm", [c, *vec], {"is_training": training, "data_format": "NHWC"},
              name="bn").outputs[0]
    r = emit(g, "ReLU6", [bn], name="relu6").outputs[0]
    s = emit(g, "Add", [r, r], name="add").outputs[0]
    g.outputs = [s]
    return g


def test_a_frozen_block_runs_in_one_buffer():
    g, ref = frozen_block(False), frozen_block(False)
    x = np.random.default_rng(2).normal(size=(2, 6, 6, 4)).astype(np.float32)
    s, got = run(g, x)
    ex = s.eval
    conv, bn, relu6, add = (ex.array(value(g, k)) for k in ("conv", "bn", "relu6", "add"))
    assert all(np.shares_memory(conv, a) for a in (bn, relu6, add))
    want = interpret(ref, {ref.inputs[0]: x}, RunContext(training=False))[0]  # eval mode
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)


def test_every_graph_output_holds_its_value_after_a_train_step():
    # A graph output the train roles do not list (here Adam's advanced beta1 power, an
    # Assign's output) must be kept alive to the end of the step like the loss.
    g = train_graph("adam")
    assign = next(n for n in g.nodes if n.op == "Assign")
    g.outputs = [*g.outputs, assign.outputs[0]]
    power = assign.inputs[0]
    s = Session(g)
    rng = np.random.default_rng(0)
    x_in, y_in = g.inputs
    for traced in (False, True, False):  # the fused calls and the per-node kernels
        s.array(x_in)[...] = rng.normal(size=x_in.type.shape)
        s.array(y_in)[...] = rng.integers(0, 3, size=y_in.type.shape)
        s.run_step(before=(lambda *args: None) if traced else None)
        np.testing.assert_array_equal(s.array(assign.outputs[0]), power.data)


@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_a_new_learning_rate_reaches_the_fused_and_rewritten_calls(opt):
    # set_learning_rate writes a constant lr in place and rebuilds no call: every call made
    # at build (fused groups, rewrites) must read the lr array, not a copy of its value.
    g = train_graph(opt)
    s = Session(g)
    rng = np.random.default_rng(0)
    x_in, y_in = g.inputs
    s.array(x_in)[...] = rng.normal(size=x_in.type.shape)
    s.array(y_in)[...] = rng.integers(0, 3, size=y_in.type.shape)
    s.run_step()
    s.set_learning_rate(0.0)
    params = [n.inputs[0] for n in s.roles.optimizers]  # the weights, not the slots
    weights = [v.data.copy() for v in params]
    s.run_step()
    for v, before in zip(params, weights):
        np.testing.assert_array_equal(v.data, before)
