"""nn.PReLU, nn.Mish and nn.Dropout2d beyond the reference runs (todkit/opset/more_activations.py,
converter/lite_forms.py, formats/mindir/lowered.LOWERED).

- Mish, Softplus and their gradients as 2.10 exports them, against numbers MindSpore 2.10's CPU
  kernels gave for the same inputs (large and small ones included);
- PReLU's x == 0 case against MindSpore 2.10; the converter's Lite spelling of PReLUGrad
  against the PReLUGrad kernel; PReLU forms Lite cannot run refused by node;
- Dropout2D: the converter's Lite spelling drops whole planes and scales the rest, is the
  identity in eval mode; a real nn.Dropout2d(p=0.5) export converts and trains; unsupported
  forms are refused by node.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from todkit import lite, opset
from todkit.converter.convert import convert
from todkit.converter.lite_forms import spell_for_lite
from todkit.core import dtypes
from todkit.core.errors import NotSupportedError
from todkit.formats import mindir, ms
from todkit.formats.mindir.lowered import read_spec
from todkit.formats.ms.optable import BY_IR
from todkit.ir.graph import Graph, TensorType
from todkit.opset.interpret import interpret
from todkit.opset.runctx import RunContext

FORMS = Path(__file__).resolve().parent / "fixtures" / "mindir_forms"
F32 = dtypes.float32

# Inputs and what MindSpore 2.10 (CPU, GRAPH_MODE) returned for them: ops.Softplus, ops.Mish,
# GradOperation(sens_param=True) of ops.Mish with sens DY, and SoftplusGrad(DY, X).
X = np.array([-100, -20, -16, -5, -1, -1e-3, 0, 1e-3, 1, 5, 15, 20, 30, 44, 45, 100], np.float32)
DY = np.linspace(0.5, 2, X.size).astype(np.float32)
MS_SOFTPLUS = [0.0, 0.0, 1.1920929e-07, 0.0067153494, 0.31326121, 0.69264722, 0.693147,
               0.69364709, 1.313261, 5.0067153, 15.0, 20.0, 30.0, 44.0, 45.0, 100.0]
MS_MISH = [-0.0, -0.0, -1.9073484e-06, -0.033576243, -0.30340102, -0.00059968006, 0.0,
           0.00060031994, 0.86509824, 4.9995522, 15.0, 20.0, 30.0, 44.0, np.nan, np.nan]
MS_MISH_GRAD = [0.0, -2.4733717e-08, -1.1769422e-06, -0.021397963, 0.053294465, 0.59935987,
                0.65999985, 0.72076786, 1.3637472, 1.4, 1.5, 1.6, 1.7, 1.8, 1.9, 2.0]
MS_SOFTPLUS_GRAD = [0.0, 1.2366859e-09, 7.8774292e-08, 0.0053542741, 0.2420474, 0.49975002,
                    0.55000001, 0.60030001, 0.95037657, 1.39063, 1.4999995, 1.6, 1.7, 1.8, 1.9,
                    2.0]


def _lowered(graph, op, values, name):
    return read_spec(op).lower(graph, values, {}, name).outputs[0]


def _mish_graph():
    """Mish(x) and its gradient as 2.10 exports them (mish_momentum's train.mindir): the file's
    Mish and SoftplusGrad read through their lowerings, the rest as the file has it."""
    g = Graph("mish")
    x = g.add_input("x", TensorType(X.shape, F32))
    dy = g.add_input("dy", TensorType(X.shape, F32))

    def emit(op, ins, name):
        return opset.emit(g, op, ins, name=name).outputs[0]

    y = _lowered(g, "Mish", [x], "Mish-op0")
    t = emit("Tanh", [emit("Softplus", [x], "Softplus-op0")], "Tanh-op0")
    through_t = emit("Mul", [t, dy], "Mul-op0")
    inner = emit("TanhGrad", [t, emit("Mul", [x, dy], "Mul-op1")], "TanhGrad-op0")
    dx = emit("Add", [through_t, _lowered(g, "SoftplusGrad", [inner, x], "SoftplusGrad-op0")],
              "Add-op0")
    sp_grad = _lowered(g, "SoftplusGrad", [dy, x], "SoftplusGrad-op1")
    return g, x, dy, [g.value("Mish-op0/Softplus"), y, dx, sp_grad]


def test_mish_and_softplus_as_read_match_mindspore_210():
    g, x, dy, outs = _mish_graph()
    assert {n.op for n in g.nodes} <= set(BY_IR), "every op has a Lite form"
    softplus, mish, mish_grad, softplus_grad = interpret(g, {x: X, dy: DY}, outputs=outs)
    # MindSpore's float32 log(1 + exp(x)) rounds to 0 below x = -16.6 and differs by ~1e-8
    # near there; the values todkit gives are the true ones (atol covers the difference)
    tol = {"rtol": 1e-6, "atol": 2e-7}
    np.testing.assert_allclose(softplus, MS_SOFTPLUS, **tol)
    np.testing.assert_allclose(softplus_grad, MS_SOFTPLUS_GRAD, **tol)
    # MindSpore's CPU Tanh (as nnacl's) approximates: 1 for x > 5 (tanh(5.0067) = 0.99991),
    # relative errors near 1e-5 below; the gradient through it differs by up to 8e-4 (x = 5).
    # todkit's Tanh is exact: its Mish gradient is the true derivative.
    np.testing.assert_allclose(mish_grad, MS_MISH_GRAD, rtol=1e-3, atol=2e-7)
    x64 = X.astype(np.float64)
    t = np.tanh(np.logaddexp(0, x64))
    exact = DY * (t + x64 / (1 + np.exp(-x64)) * (1 - t * t))
    np.testing.assert_allclose(mish_grad, exact, rtol=1e-6, atol=1e-12)
    finite = np.isfinite(MS_MISH)
    np.testing.assert_allclose(mish[finite], np.array(MS_MISH)[finite], **tol)
    # MindSpore 2.10's Mish kernel overflows to NaN above x = 44.36; todkit gives x there
    assert not finite[X > 44.4].any()
    np.testing.assert_array_equal(mish[X > 44.4], X[X > 44.4])
    assert np.isfinite(softplus).all() and np.isfinite(mish).all()


def test_softplus_is_written_as_lites_activation_and_read_back(tmp_path):
    g = Graph("sp")
    x = g.add_input("x", TensorType((2, 3), F32))
    g.outputs = [opset.emit(g, "Softplus", [x], name="Default/Softplus-op0").outputs[0]]
    ms.write(g, tmp_path / "sp.ms")
    back = ms.read(tmp_path / "sp.ms")
    assert [n.op for n in back.graph.nodes] == ["Softplus"]


# -- PReLU -----------------------------------------------------------------------------------
def test_prelu_at_zero_matches_mindspore_210():
    """MindSpore 2.10's PReLU / PReLUGrad on x = [0, -0, 1, -1], w = 0.25, dy = 1: y = x,
    dx = [0.25, 0.25, 1, 0.25] (x == 0 takes the slope), dw = [-1]."""
    x = np.array([[0.0, -0.0, 1.0, -1.0]], np.float32)
    w = np.array([0.25], np.float32)
    y = np.empty_like(x)
    opset.get_op("PReLU").kernel([x, w], [y], {"data_format": "NCHW"}, None)
    np.testing.assert_array_equal(y, [[0.0, 0.0, 1.0, -0.25]])
    dx, dw = np.empty_like(x), np.empty_like(w)
    opset.get_op("PReLUGrad").kernel([np.ones_like(x), x, w], [dx, dw],
                                      {"data_format": "NCHW"}, None)
    np.testing.assert_array_equal(dx, [[0.25, 0.25, 1.0, 0.25]])
    np.testing.assert_array_equal(dw, [-1.0])


@pytest.mark.parametrize("shape,slopes,fmt", [
    ((8, 3), 3, "NCHW"), ((8, 3), 1, "NCHW"), ((2, 3, 4, 4), 3, "NCHW"),
    ((2, 3, 4, 4), 1, "NCHW"), ((2, 4, 4, 3), 3, "NHWC"), ((2, 3, 5), 3, "NCHW"),
])
def test_prelu_grad_written_for_lite_computes_the_kernels_numbers(shape, slopes, fmt):
    rng = np.random.default_rng(0)
    g = Graph("pg")
    dy = g.add_input("dy", TensorType(shape, F32))
    x = g.add_input("x", TensorType(shape, F32))
    w = g.add_const("w", rng.uniform(0.1, 0.5, slopes).astype(np.float32), param=True)
    node = opset.emit(g, "PReLUGrad", [dy, x, w], {"data_format": fmt},
                      name="Gradients/Default/Grad_PReLU/PReLUGrad-op0")
    g.outputs = list(node.outputs)
    feeds = {dy: rng.standard_normal(shape).astype(np.float32),
             x: rng.standard_normal(shape).astype(np.float32)}
    feeds[x].flat[::5] = 0.0  # x == 0 takes the slope
    want = interpret(g, feeds, outputs=g.outputs)
    spell_for_lite(g)
    opset.verify(g, "spelled")
    assert "PReLUGrad" not in {n.op for n in g.nodes}
    assert {n.op for n in g.nodes} <= set(BY_IR)
    assert all(n.name.startswith(node.name + "/") for n in g.nodes)
    got = interpret(g, feeds, outputs=g.outputs)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)


def test_prelu_grad_spelling_leaves_out_what_nothing_reads():
    g = Graph("pg")
    dy = g.add_input("dy", TensorType((4, 3), F32))
    x = g.add_input("x", TensorType((4, 3), F32))
    w = g.add_const("w", np.full(3, 0.25, np.float32), param=True)
    node = opset.emit(g, "PReLUGrad", [dy, x, w], name="PReLUGrad-op0")
    g.outputs = [node.outputs[1]]  # only dw read (a first layer: no dx wanted)
    spell_for_lite(g)
    assert "Select_dx" not in {n.name.rsplit("/", 1)[-1] for n in g.nodes}
    assert g.outputs[0].type == TensorType((3,), F32)


def test_prelu_forms_lite_cannot_run_are_refused_by_node():
    g = Graph("p3")
    x = g.add_input("x", TensorType((2, 3, 5), F32))
    w = g.add_const("w", np.full(3, 0.25, np.float32), param=True)
    g.outputs = [opset.emit(g, "PReLU", [x, w], name="Default/net/PReLU-op0").outputs[0]]
    with pytest.raises(NotSupportedError, match="Default/net/PReLU-op0.*3 slopes on a 3-D"):
        spell_for_lite(g)


def test_prelu_4d_is_written_nhwc_and_read_back_as_such(tmp_path):
    """The converter runs PReLU NHWC (the real converter's NHWCOpMap has PReLUFusion): the
    slopes follow the channels to the last axis, and the .ms reads back with that layout."""
    path = convert(str(FORMS.parent / "reference" / "prelu_momentum" / "train.mindir"),
                   str(tmp_path / "prelu"), True)
    prelus = [n for n in ms.read(path).graph.nodes if n.op == "PReLU"]
    assert [(len(n.inputs[0].type.shape), n.attrs["data_format"]) for n in prelus] == \
        [(4, "NHWC"), (2, "NCHW")]
    assert prelus[0].inputs[0].type.shape == (8, 8, 8, 4)


def test_the_prelu_form_of_a_real_export_reads_and_converts(tmp_path):
    g = mindir.read(FORMS / "prelu.mindir")
    assert {"PReLU", "PReLUGrad"} <= {n.op for n in g.nodes}
    path = convert(str(FORMS / "prelu.mindir"), str(tmp_path / "prelu"), True)
    ops = {n.op for n in ms.read(path).graph.nodes}
    assert "PReLU" in ops and "PReLUGrad" not in ops and {"Greater", "Select"} <= ops


# -- Dropout2D -------------------------------------------------------------------------------
def _dropout2d_graph(keep, shape=(6, 5, 3, 4)):
    """Dropout2D(x) with its output and the float mask 2.10's gradient reads (Cast(mask))."""
    g = Graph("d2")
    x = g.add_input("x", TensorType(shape, F32))
    node = opset.emit(g, "Dropout2D", [x], {"keep_prob": keep}, name="Default/Dropout2D-op0")
    mask = opset.emit(g, "Cast", [node.outputs[1]], {"to": F32.ms_type_id},
                      name="Gradients/Cast-op0").outputs[0]
    g.outputs = [node.outputs[0], mask]
    return g, x


@pytest.mark.parametrize("spelled", [False, True], ids=["ir", "lite"])
def test_dropout2d_drops_whole_planes_and_scales_the_rest(spelled):
    g, x = _dropout2d_graph(0.6)
    if spelled:
        spell_for_lite(g)
        opset.verify(g, "spelled")
        assert {n.op for n in g.nodes} <= set(BY_IR) and "Dropout" in {n.op for n in g.nodes}
    data = np.random.default_rng(1).uniform(1.0, 2.0, x.type.shape).astype(np.float32)
    y, mask = interpret(g, {x: data}, outputs=g.outputs, rt=RunContext(training=True, seed=3))
    planes = mask.reshape(6, 5, -1)
    assert set(np.unique(planes)) <= {0.0, 1.0}
    assert (planes == planes[:, :, :1]).all(), "a plane is kept or dropped whole"
    np.testing.assert_allclose(y, data * mask / np.float32(0.6), rtol=1e-6)
    assert 0 < planes[:, :, 0].sum() < 30  # 30 planes, each kept with probability 0.6
    y_eval, mask_eval = interpret(g, {x: data}, outputs=g.outputs,
                                  rt=RunContext(training=False))
    np.testing.assert_array_equal(y_eval, data)
    if not spelled:  # the spelling's mask is only read by the gradient, in training
        np.testing.assert_array_equal(mask_eval, np.ones_like(data))


def test_dropout2d_keep_fraction_is_keep_prob():
    g, x = _dropout2d_graph(0.3, shape=(64, 64, 1, 1))
    spell_for_lite(g)
    _, mask = interpret(g, {x: np.ones((64, 64, 1, 1), np.float32)}, outputs=g.outputs,
                        rt=RunContext(training=True, seed=0))
    assert abs(mask.mean() - 0.3) < 0.03  # 4096 draws: 5 standard deviations


def test_dropout2d_is_removed_from_an_inference_conversion():
    g = Graph("d2")
    x = g.add_input("x", TensorType((2, 3, 2, 2), F32))
    node = opset.emit(g, "Dropout2D", [x], {"keep_prob": 0.5}, name="Default/Dropout2D-op0")
    g.outputs = [opset.emit(g, "ReLU", [node.outputs[0]], name="Default/ReLU-op0").outputs[0]]
    spell_for_lite(g, train=False)
    assert [n.op for n in g.nodes] == ["ReLU"] and g.nodes[0].inputs[0] is x


def test_a_real_dropout2d_export_converts_and_drops_whole_channels(tmp_path):
    """nn.Dropout2d(p=0.5) on a Dense output seen as (2, 2, 1, 2), L1 loss (the mindir_forms
    fixture): the first step's loss is the one of one of the 16 ways to keep the 4 planes,
    the kept ones doubled."""
    path = convert(str(FORMS / "dropout2d.mindir"), str(tmp_path / "d2"), True)
    ops = [n.op for n in ms.read(path).graph.nodes]
    assert "Dropout2D" not in ops and "Dropout" in ops
    g = mindir.read(FORMS / "dropout2d.mindir")
    state = {c.name: c.data for c in g.consts if c.param}
    x = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)  # the fixture's inputs
    y = np.linspace(0.1, 0.9, 8, dtype=np.float32).reshape(2, 4)
    h = (x @ state["fc.weight"].T + state["fc.bias"]).reshape(2, 2, 1, 2)
    candidates = []
    for keep in itertools.product([0.0, 2.0], repeat=4):
        dropped = (h * np.array(keep, np.float32).reshape(2, 2, 1, 1)).reshape(2, 4)
        candidates.append(float(np.abs(dropped - y).mean()))
    model = lite.Model()
    model.build_from_file(path, lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(x)
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    model.run_step()
    loss = float(model.get_outputs()[0].get_data_to_numpy().reshape(-1)[0])
    assert min(abs(loss - c) for c in candidates) < 1e-6, (loss, candidates)
    for _ in range(3):  # it goes on training
        model.run_step()
        assert np.isfinite(model.get_outputs()[0].get_data_to_numpy()).all()


@pytest.mark.parametrize("keep,shape,message", [
    (0.0, (2, 3, 2, 2), "keep_prob 0.0 is not supported"),
    (0.5, (2, 3, 4), "a 3-D input is not supported"),
])
def test_dropout2d_forms_todkit_cannot_run_are_refused_by_node(keep, shape, message):
    g = Graph("d2")
    x = g.add_input("x", TensorType(shape, F32))
    with pytest.raises(NotSupportedError, match=f"Default/Dropout2D-op0.*{message}"):
        read_spec("Dropout2D").lower(g, [x], {"keep_prob": keep}, "Default/Dropout2D-op0")


# -- the front end -----------------------------------------------------------------------------
def test_front_end_prelu_takes_mindspores_arguments_and_names():
    import todkit as M
    from todkit import nn

    class Net(nn.Cell):
        def __init__(self):
            super().__init__()
            self.act = nn.PReLU(3, [0.1, 0.2, 0.3])

        def construct(self, x):
            return self.act(x)

    net = Net()
    assert [p.name for p in net.trainable_params()] == ["act.w"]
    np.testing.assert_allclose(net.act.w.asnumpy(), [0.1, 0.2, 0.3])
    assert nn.PReLU().w.asnumpy().tolist() == [0.25] and nn.PReLU().w.name == "a"
    x = np.array([[-1.0, 2.0, -3.0], [4.0, -5.0, 0.0]], np.float32)
    np.testing.assert_allclose(net(M.Tensor(x)).asnumpy(),
                               [[-0.1, 2.0, -0.9], [4.0, -1.0, 0.0]], rtol=1e-6)
    with pytest.raises(ValueError, match="length of 'w'"):
        nn.PReLU(3, [0.1, 0.2])
    with pytest.raises(ValueError, match="positive int"):
        nn.PReLU(0)
    with pytest.raises(TypeError, match="'w' must be"):
        nn.PReLU(1, 1)
    with pytest.raises(ValueError, match=r"shape \(2,\)"):
        nn.PReLU(2, M.Tensor(np.ones(3, np.float32)))


def test_front_end_mish_is_x_tanh_softplus():
    import todkit as M
    from todkit import nn

    x = np.linspace(-30, 30, 13, dtype=np.float32)
    got = nn.Mish()(M.Tensor(x)).asnumpy()
    np.testing.assert_allclose(got, x * np.tanh(np.logaddexp(0, x)), rtol=1e-6, atol=1e-12)
