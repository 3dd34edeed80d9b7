"""Export and resume, output_tensor_names, weight-quantized export, transfer learning."""

from __future__ import annotations

import numpy as np
import pytest

from tests.shared_paths import LITE, need
from tests.test_runtime_graphs import BATCH, IN, OUT, batches, train_graph
from todkit import lite
from todkit.core import dtypes
from todkit.core.errors import ParamError
from todkit.formats import ms
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit


def feed(model, x, y):
    model.get_inputs()[0].set_data_from_numpy(x)
    model.get_inputs()[1].set_data_from_numpy(y)


def load(path, train=True):
    m = lite.Model()
    m.build_from_file(str(path), lite.ModelType.MINDIR_LITE, lite.Context(),
                      lite.TrainCfg() if train else None)
    return m


def test_adam_export_resume_keeps_state_and_step_counters(tmp_path):
    data = batches(8)
    straight = lite.Model._from_graph(train_graph("adam"))
    stopped = lite.Model._from_graph(train_graph("adam"))
    for x, y in data[:4]:
        for m in (straight, stopped):
            feed(m, x, y)
            m.run_step()
    stopped.export(tmp_path / "ckpt.ms")
    resumed = load(tmp_path / "ckpt.ms")
    b1p = resumed.session.graph.value("beta1_power").data
    assert b1p == pytest.approx(0.9 ** 4)  # the step counter (beta powers) came along
    for x, y in data[4:]:
        for m in (straight, resumed):
            feed(m, x, y)
            m.run_step()
        np.testing.assert_array_equal(resumed.get_outputs()[0].get_data_to_numpy(),
                                      straight.get_outputs()[0].get_data_to_numpy())
    for name in ("fc.weight", "moment1.fc.weight", "moment2.fc.bias", "beta2_power"):
        np.testing.assert_array_equal(resumed.session.graph.value(name).data,
                                      straight.session.graph.value(name).data, err_msg=name)


def test_output_tensor_names_choose_the_outputs(tmp_path):
    model = lite.Model._from_graph(train_graph("sgd"))
    mm = model.session.graph.nodes[0].outputs[0]  # MatMul, before the BiasAdd
    model.export(tmp_path / "mm.ms", export_inference_only=True, output_tensor_names=[mm.name])
    back = load(tmp_path / "mm.ms", train=False)
    assert back.get_output_tensor_names() == [mm.name]
    assert [n.op for n in back.session.graph.nodes] == ["MatMul"]
    x = batches(1)[0][0]
    w = model.session.graph.value("fc.weight").data
    np.testing.assert_allclose(back.predict([x])[0].get_data_to_numpy(), x @ w.T, rtol=1e-6)
    with pytest.raises(ParamError, match="'nope'"):
        model.export(tmp_path / "x.ms", export_inference_only=True, output_tensor_names=["nope"])
    assert not (tmp_path / "x.ms").exists()


def test_inference_export_drops_dropout(tmp_path):
    from todkit.runtime.export import for_inference

    g = Graph("with_dropout")
    x = g.add_input("x", TensorType((2, 3), dtypes.float32))
    y = g.add_node("Dropout", [x], {}, [x.type], name="drop").outputs[0]
    z = emit(g, "ReLU", [y], name="relu").outputs[0]
    g.outputs = [z]
    out = for_inference(g)
    assert [n.op for n in out.nodes] == ["ReLU"] and out.nodes[0].inputs[0] is x


def test_weight_quant_export_loads_and_predicts_within_tolerance(tmp_path):
    path = need(LITE / "lenet_tod.ms")
    model = load(path)
    x = np.random.default_rng(0).normal(size=model.get_inputs()[0].shape).astype(np.float32)
    want = model.predict([x])[0].get_data_to_numpy()
    model.export(tmp_path / "q.ms", export_inference_only=True,
                 quantization_type=lite.QuantizationType.WEIGHT_QUANT)
    model.export(tmp_path / "f.ms", export_inference_only=True)
    q_size, f_size = (tmp_path / "q.ms").stat().st_size, (tmp_path / "f.ms").stat().st_size
    assert q_size < 0.4 * f_size  # int8 weights: about a quarter of the float bytes
    # The file holds int8 data with per-channel quantParams, nodes tagged QUANT_WEIGHT.
    from todkit.formats.ms import fbread

    meta = fbread.decode((tmp_path / "q.ms").read_bytes(), "q.ms")
    quantized = [t for t in meta["allTensors"] if t.get("quantParams")]
    assert quantized and all(t["dataType"] == 32 for t in quantized)
    assert all(len(t["quantParams"]) == int(t["dims"][0]) for t in quantized)
    assert any(n.get("quantType") == 4 for n in meta["nodes"])
    got = load(tmp_path / "q.ms", train=False).predict([x])[0].get_data_to_numpy()
    # Stated accuracy loss: logits within 2% of their range, same top-1 class for >= 95%.
    assert np.abs(got - want).max() <= 0.02 * (want.max() - want.min())
    assert np.mean(got.argmax(1) == want.argmax(1)) >= 0.95


# -- transfer learning -----------------------------------------------------------------------
def transfer_files(tmp_path):
    g = Graph("backbone")
    x = g.add_input("image", TensorType((BATCH, 5), dtypes.float32))
    w = g.add_const("bb.weight", np.random.default_rng(5).normal(size=(IN, 5))
                    .astype(np.float32), param=True)
    h = emit(g, "MatMul", [x, w], {"transpose_b": True}, name="bb/MatMul-op0").outputs[0]
    g.outputs = [emit(g, "ReLU", [h], name="bb/ReLU-op0").outputs[0]]
    ms.write(g, tmp_path / "bb.ms")
    ms.write(train_graph("momentum", lr=0.1), tmp_path / "head.ms")
    return tmp_path / "bb.ms", tmp_path / "head.ms"


def test_transfer_learning_trains_the_head_only(tmp_path):
    bb, head = transfer_files(tmp_path)
    model = lite.build_transfer_learning(bb, head, train_cfg=lite.TrainCfg())
    assert [t.name for t in model.get_inputs()] == ["image", "inputs1"]
    rng = np.random.default_rng(2)
    x = rng.normal(size=(8, 5)).astype(np.float32)
    y = rng.integers(0, OUT, 8).astype(np.int32)
    bb_w = model.backbone.session.graph.value("bb.weight").data.copy()
    lm = lite.LossMonitor(print_every_n_steps=0)
    model.train(5, lite.ArrayDataset(x, y, batch_size=BATCH), [lm])
    losses = [avg for _, avg in lm.get_loss_points()]
    assert losses[-1] < losses[0]
    np.testing.assert_array_equal(model.backbone.session.graph.value("bb.weight").data, bb_w)
    # The joined inference export predicts as backbone + head.
    model.export(tmp_path / "joined.ms", export_inference_only=True)
    joined = load(tmp_path / "joined.ms", train=False)
    np.testing.assert_allclose(joined.predict([x[:2]])[0].get_data_to_numpy(),
                               model.predict([x[:2]])[0].get_data_to_numpy(), rtol=1e-6)


def test_feature_cache_gives_the_same_numbers_and_skips_the_backbone(tmp_path):
    bb, head = transfer_files(tmp_path)
    rng = np.random.default_rng(4)
    x = rng.normal(size=(64, 5)).astype(np.float32)
    y = rng.integers(0, OUT, 64).astype(np.int32)
    results = {}
    for cache in (False, True):
        model = lite.build_transfer_learning(bb, head, train_cfg=lite.TrainCfg(),
                                             feature_cache=cache)
        ds = lite.ArrayDataset(x, y, batch_size=BATCH, shuffle=True, seed=7)
        model.train(3, ds, [])
        results[cache] = (model.head.session.graph.value("fc.weight").data.copy(),
                          model.backbone_runs)
    np.testing.assert_array_equal(results[True][0], results[False][0])
    assert results[False][1] == 3 * 32 and results[True][1] == 32  # only the first epoch


def test_feature_cache_speeds_up_later_epochs(tmp_path):
    # A heavier backbone so that skipping it shows in wall time.
    g = Graph("big_backbone")
    h = g.add_input("image", TensorType((BATCH, 256), dtypes.float32))
    rng = np.random.default_rng(0)
    for k in range(12):
        w = g.add_const(f"w{k}", (rng.normal(size=(256, 256)) / 16).astype(np.float32))
        h = emit(g, "MatMul", [h, w], {"transpose_b": True}, name=f"bb/MatMul-op{k}").outputs[0]
    w = g.add_const("proj", (rng.normal(size=(IN, 256)) / 16).astype(np.float32))
    g.outputs = [emit(g, "MatMul", [h, w], {"transpose_b": True}, name="bb/proj").outputs[0]]
    ms.write(g, tmp_path / "bb.ms")
    ms.write(train_graph("sgd"), tmp_path / "head.ms")
    x = rng.normal(size=(256, 256)).astype(np.float32)
    y = rng.integers(0, OUT, 256).astype(np.int32)
    model = lite.build_transfer_learning(tmp_path / "bb.ms", tmp_path / "head.ms",
                                         train_cfg=lite.TrainCfg(), feature_cache=True)
    times = lite.TimeMonitor()
    model.train(3, lite.ArrayDataset(x, y, batch_size=BATCH, shuffle=True), [times])
    first, later = times.epoch_seconds[0], min(times.epoch_seconds[1:])
    assert later < 0.7 * first, times.epoch_seconds


def test_feature_cache_refuses_a_random_backbone(tmp_path):
    bb, head = transfer_files(tmp_path)
    model = lite.build_transfer_learning(bb, head, train_cfg=lite.TrainCfg())
    model.backbone.session.graph.nodes[0].op = "Dropout"  # as if the backbone had one
    with pytest.raises(ParamError, match="deterministic.*Dropout"):
        lite.TransferModel(model.backbone, model.head, feature_cache=True)
