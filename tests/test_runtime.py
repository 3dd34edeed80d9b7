"""The device runtime (todkit.runtime) and its API (todkit.lite) against the reference
interpreter, on hand-built train graphs laid out like the converter's files."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from tests.shared_paths import LITE, need
from tests.test_runtime_graphs import BATCH, IN, OUT, batches, train_graph
from tests.test_runtime_graphs import inference_graph as infer_only_graph
from todkit import lite
from todkit.core import dtypes
from todkit.core.errors import (
    RET_ERROR,
    GraphFileError,
    InputTensorError,
    OpExecuteError,
    OpNotFoundError,
    ParamError,
    TodkitError,
)
from todkit.ir.graph import Graph, TensorType
from todkit.opset.interpret import interpret
from todkit.runtime import Session, find_roles
from todkit.runtime.export import inference_graph

OPTIMIZERS = ["adam", "momentum", "sgd"]


def consts(g: Graph) -> dict[str, np.ndarray]:
    return {c.name: c.data.copy() for c in g.consts}


def feed(model: lite.Model, x, y):
    data, label = model.get_inputs()
    data.set_data_from_numpy(x)
    label.set_data_from_numpy(y)


# -- roles -------------------------------------------------------------------------------------
def test_roles_found_as_lite_does():
    g = train_graph("adam")
    r = find_roles(g)
    assert [n.name.rsplit("/", 1)[-1] for n in r.loss_nodes] == [
        "SparseSoftmaxCrossEntropyWithLogits-op0"]
    assert "Gradients" not in r.loss_nodes[0].name
    assert [v.name for v in r.eval_outputs] == [g.node(
        "Default/network-WithLossCell/_backbone-Tiny/fc-Dense/BiasAdd-op0").outputs[0].name]
    assert [n.op for n in r.inference_nodes] == ["MatMul", "BiasAdd"]
    assert [n.op for n in r.optimizers] == ["Adam", "Adam"]
    assert r.train_outputs == g.outputs
    assert [v.name for v in r.inference_inputs] == ["inputs0"]
    assert not r.is_inference_model


def test_custom_loss_name_decides_what_is_the_loss():
    # With a pattern that matches nothing, the graph is an inference model (as in Lite).
    r = find_roles(train_graph("sgd"), loss_names=["no_such_loss"])
    assert r.is_inference_model


# -- training equals the reference interpreter -------------------------------------------------
@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_run_step_equals_reference_interpreter(opt):
    ref = train_graph(opt)
    model = lite.Model._from_graph(train_graph(opt), lite.TrainCfg())
    assert model.get_train_mode()
    weights_before = consts(model.session.graph)
    for step, (x, y) in enumerate(batches(6)):
        feed(model, x, y)
        model.run_step()
        loss = model.get_outputs()[0].get_data_to_numpy()
        (ref_loss,) = interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y})
        np.testing.assert_array_equal(loss, ref_loss, err_msg=f"{opt} step {step}")
        got, want = consts(model.session.graph), consts(ref)
        for name in want:
            np.testing.assert_array_equal(got[name], want[name], err_msg=f"{name} step {step}")
    assert not np.array_equal(weights_before["fc.weight"], got["fc.weight"])


def test_training_lowers_the_loss():
    model = lite.Model._from_graph(train_graph("momentum", lr=0.5))
    x, y = batches(1)[0]
    feed(model, x, y)
    losses = []
    for _ in range(20):
        model.run_step()
        losses.append(float(model.get_outputs()[0].get_data_to_numpy()))
    assert losses[-1] < losses[0] * 0.5, losses


# -- eval mode and predict -----------------------------------------------------------------------
def test_eval_outputs_and_predict_run_only_inference_nodes():
    model = lite.Model._from_graph(train_graph("adam"))
    s = model.session
    assert [n.op for n in s.eval.nodes] == ["MatMul", "BiasAdd"]
    x, _ = batches(1)[0]
    before = consts(s.graph)
    bad_labels = np.full(BATCH, 99, np.int32)  # the loss kernel would reject these
    logits = model.predict([x, bad_labels])[0].get_data_to_numpy()
    ref = train_graph("adam")
    want = interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: np.zeros(BATCH, np.int32)},
                     outputs=find_roles(ref).eval_outputs)[0]
    np.testing.assert_array_equal(logits, want)
    assert model.get_train_mode()  # predict does not switch modes
    model.set_train_mode(False)
    assert model.get_output_tensor_names() == [s.roles.eval_outputs[0].name]
    model.run_step()  # eval mode: inference only, weights untouched
    np.testing.assert_array_equal(model.get_outputs()[0].get_data_to_numpy(), want)
    after = consts(s.graph)
    assert all(np.array_equal(before[k], after[k]) for k in before)
    # predict with only the data input, as inference reads only it
    np.testing.assert_array_equal(model.predict([lite.Tensor(x)])[0].get_data_to_numpy(), want)


def test_outputs_by_mode_and_predictions_during_training():
    model = lite.Model._from_graph(train_graph("sgd"))
    loss_name = model.session.roles.train_outputs[0].name
    logits_name = model.session.roles.eval_outputs[0].name
    assert model.get_output_tensor_names() == [loss_name]
    feed(model, *batches(1)[0])
    model.run_step()
    assert model.get_output_by_tensor_name(logits_name).shape == [BATCH, OUT]
    model.set_train_mode(False)
    assert model.get_output_tensor_names() == [logits_name]
    with pytest.raises(ParamError, match="nope"):
        model.get_output_by_tensor_name("nope")
    assert model.get_input_by_tensor_name("inputs1").dtype == lite.DataType.INT32
    with pytest.raises(ParamError, match="nope"):
        model.get_input_by_tensor_name("nope")


def test_inference_model():
    model = lite.Model._from_graph(infer_only_graph())
    assert not model.get_train_mode()
    with pytest.raises(TodkitError, match="This is inference model"):
        model.set_train_mode(True)
    x, _ = batches(1)[0]
    ref = infer_only_graph()
    np.testing.assert_array_equal(model.predict([x])[0].get_data_to_numpy(),
                                  interpret(ref, {ref.inputs[0]: x})[0])
    assert model.get_learning_rate() == 0.0
    model.set_learning_rate(0.1)  # no optimizers: nothing to set, no error (as Lite)


# -- learning rate ---------------------------------------------------------------------------
@pytest.mark.parametrize("opt,initial", [("adam", 0.003), ("momentum", 0.01), ("sgd", 0.01)])
def test_learning_rate_get_set_and_effect(opt, initial):
    model = lite.Model._from_graph(train_graph(opt))
    assert model.get_learning_rate() == pytest.approx(initial)
    model.set_learning_rate(0.25)
    assert model.get_learning_rate() == pytest.approx(0.25)
    assert float(model.session.graph.value("learning_rate").data) == pytest.approx(0.25)
    ref = train_graph(opt, lr=0.25)
    for x, y in batches(3):
        feed(model, x, y)
        model.run_step()
        interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y})
    np.testing.assert_array_equal(model.session.graph.value("fc.weight").data,
                                  ref.value("fc.weight").data)
    model.set_learning_rate(0.0)
    w = model.session.graph.value("fc.weight").data.copy()
    model.run_step()
    np.testing.assert_array_equal(model.session.graph.value("fc.weight").data, w)


def test_negative_learning_rate_is_an_error():
    model = lite.Model._from_graph(train_graph("momentum"))
    with pytest.raises(TodkitError) as e:
        model.set_learning_rate(-0.1)
    assert e.value.code == RET_ERROR
    assert model.get_learning_rate() == pytest.approx(0.01)


# -- tensors -------------------------------------------------------------------------------------
def test_set_data_from_numpy_checks_and_copies():
    model = lite.Model._from_graph(train_graph("sgd"))
    data, label = model.get_inputs()
    assert (data.name, data.shape, data.dtype, data.format) == (
        "inputs0", [BATCH, IN], lite.DataType.FLOAT32, lite.Format.NCHW)
    with pytest.raises(InputTensorError, match="inputs0.*shape"):
        data.set_data_from_numpy(np.zeros((BATCH + 1, IN), np.float32))
    with pytest.raises(InputTensorError, match="inputs0.*dtype"):
        data.set_data_from_numpy(np.zeros((BATCH, IN), np.float64))
    with pytest.raises(InputTensorError, match="inputs1.*dtype"):
        label.set_data_from_numpy(np.zeros(BATCH, np.int64))
    with pytest.raises(ParamError, match="inputs0"):
        data.set_data_from_numpy([[0.0] * IN] * BATCH)
    x = np.arange(BATCH * IN, dtype=np.float32).reshape(BATCH, IN)
    data.set_data_from_numpy(x)
    got = data.get_data_to_numpy()
    np.testing.assert_array_equal(got, x)
    got[...] = -1  # a copy: the model's input is unchanged
    np.testing.assert_array_equal(data.get_data_to_numpy(), x)
    out = model.get_outputs()[0]
    with pytest.raises(InputTensorError, match="not a model input"):
        out.set_data_from_numpy(out.get_data_to_numpy())


# -- engine: plan, arena, errors ---------------------------------------------------------------
def test_arena_is_planned_once_and_reused():
    model = lite.Model._from_graph(train_graph("adam"))
    s = model.session
    arena = s.arena
    bound_ids = [[id(a) for a in ins + outs] for _, ins, outs, _ in s.train.bound]
    for ex in s.executors:
        assert ex.plan.overlaps() == []
        assert ex.plan.total <= ex.plan.naive_total
        for arr in ex.views.values():
            assert np.shares_memory(arr, arena)
    for x, y in batches(3):
        feed(model, x, y)
        model.run_step()
    assert s.arena is arena and s.arena.nbytes == arena.nbytes
    assert [[id(a) for a in ins + outs] for _, ins, outs, _ in s.train.bound] == bound_ids
    weights = s.graph.value("fc.weight").data
    assert not np.shares_memory(weights, arena)  # state lives outside the arena
    text = model.describe_plan()
    assert "train plan" in text and "eval plan" in text and "naive sum" in text


def test_kernel_failure_names_the_node():
    model = lite.Model._from_graph(train_graph("sgd"))
    x, _ = batches(1)[0]
    feed(model, x, np.full(BATCH, 99, np.int32))
    with pytest.raises(OpExecuteError, match="SparseSoftmaxCrossEntropyWithLogits-op0"):
        model.run_step()


def test_every_missing_op_is_reported_at_once():
    g = Graph("unknown_ops")
    x = g.add_input("x", TensorType((2,), dtypes.float32))
    a = g.add_node("FooOp", [x], {}, [x.type], name="n/FooOp-op0").outputs[0]
    b = g.add_node("BarOp", [a], {}, [x.type], name="n/BarOp-op0").outputs[0]
    g.outputs = [b]
    with pytest.raises(OpNotFoundError) as e:
        Session(g)
    assert set(e.value.missing) == {"FooOp", "BarOp"}
    assert "FooOp" in str(e.value) and "BarOp" in str(e.value)


# -- accumulate gradients ---------------------------------------------------------------------
def test_accumulate_gradients_then_apply():
    cfg = lite.TrainCfg(accumulate_gradients=True)
    model = lite.Model._from_graph(train_graph("momentum", lr=0.1), cfg)
    w0 = model.session.graph.value("fc.weight").data.copy()
    ref = train_graph("momentum")  # to compute the gradients
    dw_name = model.session.roles.optimizers[0].inputs[3].name
    want = np.zeros_like(w0)
    for x, y in batches(2):
        feed(model, x, y)
        model.run_step()
        dw = interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y},
                       outputs=[ref.value(dw_name)])[0]
        want += dw
        ref.value("fc.weight").data[...] = w0  # keep the reference at the initial weights
        ref.value("fc.bias").data[...] = model.session.graph.value("fc.bias").data
    np.testing.assert_array_equal(model.session.graph.value("fc.weight").data, w0)
    grads = {t.name: t.get_data_to_numpy() for t in model.get_gradients()}
    np.testing.assert_allclose(grads[dw_name], want, rtol=1e-6)
    model.apply_gradients()
    np.testing.assert_allclose(model.session.graph.value("fc.weight").data,
                               w0 - np.float32(0.1) * grads[dw_name], rtol=1e-6)
    assert not model.get_gradients()[0].get_data_to_numpy().any()


def test_feature_maps_round_trip():
    model = lite.Model._from_graph(train_graph("sgd"))
    maps = {t.name: t for t in model.get_feature_maps()}
    assert "fc.weight" in maps and "accum.fc.bias" in maps
    w = maps["fc.weight"]
    w.set_data_from_numpy(np.ones((OUT, IN), np.float32))
    model.update_feature_maps([w])
    assert (model.session.graph.value("fc.weight").data == 1).all()


# -- export ----------------------------------------------------------------------------------
def test_inference_export_structure():
    model = lite.Model._from_graph(train_graph("adam"))
    feed(model, *batches(1)[0])
    model.run_step()
    g = inference_graph(model.session)
    assert [n.op for n in g.nodes] == ["MatMul", "BiasAdd"]
    assert [v.name for v in g.inputs] == ["inputs0"]
    assert [v.name for v in g.outputs] == [v.name for v in model.session.roles.eval_outputs]
    assert {c.name for c in g.consts} == {"fc.weight", "fc.bias"}
    np.testing.assert_array_equal(g.value("fc.weight").data,
                                  model.session.graph.value("fc.weight").data)
    exported = lite.Model._from_graph(g)
    assert not exported.get_train_mode()
    x, _ = batches(2)[1]
    np.testing.assert_array_equal(exported.predict([x])[0].get_data_to_numpy(),
                                  model.predict([x])[0].get_data_to_numpy())


def _ms_codec():
    try:
        from todkit.formats import ms
    except ImportError:
        pytest.skip("todkit.formats.ms has not landed")
    if not (hasattr(ms, "read") and hasattr(ms, "write")):
        pytest.skip("todkit.formats.ms has no read/write yet")
    return ms


def test_build_from_file_errors_name_the_file(tmp_path):
    missing = tmp_path / "missing.ms"
    with pytest.raises(GraphFileError, match="missing.ms"):
        lite.Model().build_from_file(str(missing), lite.ModelType.MINDIR_LITE, lite.Context())
    _ms_codec()
    bad = tmp_path / "bad.ms"
    bad.write_bytes(b"this is not a flatbuffer")
    with pytest.raises(TodkitError, match="bad.ms"):
        lite.Model().build_from_file(str(bad), lite.ModelType.MINDIR_LITE, lite.Context())


def test_inference_export_file_round_trip(tmp_path):
    _ms_codec()
    model = lite.Model._from_graph(train_graph("adam"))
    feed(model, *batches(1)[0])
    model.run_step()
    path = tmp_path / "infer.ms"
    model.export(str(path), export_inference_only=True)
    back = lite.Model()
    back.build_from_file(str(path), lite.ModelType.MINDIR_LITE, lite.Context())
    assert not back.get_train_mode()
    assert [t.name for t in back.get_inputs()] == ["inputs0"]
    x, _ = batches(2)[1]
    np.testing.assert_array_equal(back.predict([x])[0].get_data_to_numpy(),
                                  model.predict([x])[0].get_data_to_numpy())


@pytest.mark.parametrize("opt", OPTIMIZERS)
def test_train_export_then_continue_equals_not_stopping(tmp_path, opt):
    _ms_codec()
    data = batches(6)
    straight = lite.Model._from_graph(train_graph(opt))
    stopped = lite.Model._from_graph(train_graph(opt))
    for x, y in data[:3]:
        for m in (straight, stopped):
            feed(m, x, y)
            m.run_step()
    path = tmp_path / "trained.ms"
    stopped.export(str(path))
    resumed = lite.Model()
    resumed.build_from_file(str(path), lite.ModelType.MINDIR_LITE, lite.Context(),
                            train_cfg=lite.TrainCfg())
    assert resumed.get_train_mode()
    for x, y in data[3:]:
        for m in (straight, resumed):
            feed(m, x, y)
            m.run_step()
        np.testing.assert_allclose(resumed.get_outputs()[0].get_data_to_numpy().reshape(-1),
                                   straight.get_outputs()[0].get_data_to_numpy().reshape(-1),
                                   rtol=1e-6)
    np.testing.assert_allclose(resumed.session.graph.value("fc.weight").data,
                               straight.session.graph.value("fc.weight").data, rtol=1e-6)


CORPUS = str(LITE)


@pytest.mark.parametrize("name", ["tiny_adam_train", "tiny_momentum_train", "tiny_sgd_train"])
def test_converter_made_files_train(name):
    _ms_codec()
    need(LITE / f"{name}.ms")
    model = lite.Model()
    model.build_from_file(f"{CORPUS}/{name}.ms", lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    s = model.session
    assert [v.name for v in s.roles.eval_outputs] == [
        "Default/network-WithLossCell/_backbone-Tiny/fc-Dense/BiasAdd-op0"]
    assert [t.name for t in model.get_inputs()] == ["inputs0", "inputs1"]
    x, y = batches(1)[0]
    feed(model, x, y)
    losses = []
    for _ in range(5):
        model.run_step()
        losses.append(float(model.get_outputs()[0].get_data_to_numpy().reshape(-1)[0]))
    assert losses[-1] < losses[0]


# -- the import boundary -------------------------------------------------------------------------
def test_runtime_imports_no_front_end_or_protobuf():
    code = ("import sys, todkit.lite, todkit.runtime; "
            "bad = [m for m in sys.modules if m.startswith(('todkit.frontend', 'todkit.autodiff',"
            " 'todkit.formats.mindir', 'todkit.converter', 'google.protobuf'))]; "
            "print(bad); sys.exit(1 if bad else 0)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    r = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True,
                       text=True, cwd=root)
    assert r.returncode == 0, r.stdout + r.stderr


def _gradient_sum(data):
    """Sum of the weight gradients over ``data`` at the initial weights (reference)."""
    ref = train_graph("momentum", lr=0.0)
    dw = find_roles(ref).optimizers[0].inputs[3]  # ApplyMomentum: param, accum, lr, grad
    return sum(interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y}, outputs=[dw])[0]
               for x, y in data)


def test_virtual_batch_updates_every_n_steps_with_scaled_lr():
    model = lite.Model._from_graph(train_graph("momentum", lr=0.1))
    w0 = model.session.graph.value("fc.weight").data.copy()
    model.setup_virtual_batch(2)
    assert model.get_learning_rate() == pytest.approx(0.05)
    data = batches(2)
    feed(model, *data[0])
    model.run_step()
    np.testing.assert_array_equal(model.session.graph.value("fc.weight").data, w0)
    feed(model, *data[1])
    model.run_step()
    want = w0 - np.float32(0.05) * _gradient_sum(data)
    np.testing.assert_allclose(model.session.graph.value("fc.weight").data, want, rtol=1e-5)
    model.setup_virtual_batch(1)  # off: the lr comes back, every step updates again
    assert model.get_learning_rate() == pytest.approx(0.1)
    w1 = model.session.graph.value("fc.weight").data.copy()
    model.run_step()
    assert not np.array_equal(model.session.graph.value("fc.weight").data, w1)


def test_trainable_and_optimizer_params():
    model = lite.Model._from_graph(train_graph("adam"))
    names = {t.name for t in model.get_trainable_params()}
    assert {"fc.weight", "fc.bias", "moment1.fc.weight", "moment2.fc.bias",
            "learning_rate"} <= names
    params = {t.name: t for t in model.get_optimizer_params()}
    assert {"learning_rate", "Default/data-0", "Default/data-1", "Default/data-2"} <= set(params)
    lr = params["learning_rate"]
    lr.set_data_from_numpy(np.array(0.5, np.float32))
    model.set_optimizer_params([lr])
    assert model.get_learning_rate() == pytest.approx(0.5)
    with pytest.raises(ParamError, match="fc.weight"):
        model.set_optimizer_params([lite.Tensor(np.zeros(12, np.float32), name="fc.weight")])


@pytest.mark.parametrize("name", ["tiny_adam_train", "tiny_momentum_train", "tiny_sgd_train"])
def test_converter_made_files_export_and_resume(tmp_path, name):
    ms = _ms_codec()
    need(LITE / f"{name}.ms")
    src = f"{CORPUS}/{name}.ms"
    straight, stopped = lite.Model(), lite.Model()
    for m in (straight, stopped):
        m.build_from_file(src, lite.ModelType.MINDIR_LITE, lite.Context(), lite.TrainCfg())
    ref = ms.read(src).graph  # the reference interpreter runs the same file
    data = batches(6)
    for x, y in data[:3]:
        for m in (straight, stopped):
            feed(m, x, y)
            m.run_step()
        (ref_loss,) = interpret(ref, {ref.inputs[0]: x, ref.inputs[1]: y})
        np.testing.assert_array_equal(straight.get_outputs()[0].get_data_to_numpy(), ref_loss)
    trained = tmp_path / "trained.ms"
    stopped.export(str(trained))
    # Only weights changed, so the original buffer was patched (Lite writes it back).
    assert trained.stat().st_size == os.path.getsize(src)
    resumed = lite.Model()
    resumed.build_from_file(str(trained), lite.ModelType.MINDIR_LITE, lite.Context(),
                            lite.TrainCfg())
    for x, y in data[3:]:
        for m in (straight, resumed):
            feed(m, x, y)
            m.run_step()
        np.testing.assert_array_equal(resumed.get_outputs()[0].get_data_to_numpy(),
                                      straight.get_outputs()[0].get_data_to_numpy())
    infer = tmp_path / "infer.ms"
    straight.export(str(infer), export_inference_only=True)
    back = lite.Model()
    back.build_from_file(str(infer), lite.ModelType.MINDIR_LITE, lite.Context())
    assert [t.name for t in back.get_inputs()] == ["inputs0"]
    assert back.get_output_tensor_names() == [straight.session.roles.eval_outputs[0].name]
    x = data[0][0]
    np.testing.assert_array_equal(back.predict([x])[0].get_data_to_numpy(),
                                  straight.predict([x])[0].get_data_to_numpy())


def test_plan_printer(capsys):
    _ms_codec()
    from todkit.runtime.__main__ import main

    assert main([str(need(LITE / "tiny_sgd_train.ms"))]) == 0
    out = capsys.readouterr().out
    assert "train model" in out and "eval outputs:" in out and "naive sum" in out
    assert main([f"{CORPUS}/no_such.ms"]) == 1
