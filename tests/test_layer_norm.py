"""LayerNorm and LayerNormGrad (todkit/opset/layer_norm.py): the kernels against plain NumPy
formulas and against MindSpore 2.10's own numbers (tests/fixtures/layer_norm, made by
scripts/make_layer_norm_reference.py), the gradient kernel against finite differences of the
forward kernel, the gradient rule against MindSpore's bprop, and both ops' forms in MINDIR
(as 2.10 exports them) and in `.ms` (as MindSpore Lite's converter writes them)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.test_mindir_forms import _layout
from todkit import opset
from todkit.autodiff import add_backward
from todkit.converter.convert import convert
from todkit.core import dtypes
from todkit.core.errors import InferShapeError
from todkit.formats import mindir, ms
from todkit.formats.mindir.optable import spec_for
from todkit.formats.mindir.schema import PrimType, load_model
from todkit.formats.ms import fbread, schema
from todkit.ir.graph import Graph, TensorType
from todkit.opset import RunContext, get_op

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MS210 = FIXTURES / "layer_norm" / "ms210_layer_norm.npz"
TRAIN = FIXTURES / "reference" / "layernorm_adam" / "train.mindir"
LN, LNG = get_op("LayerNorm"), get_op("LayerNormGrad")

# (x shape, begin_norm_axis, begin_params_axis, epsilon)
GEOMETRIES = [
    ((8, 12), -1, -1, 1e-7),      # nn.LayerNorm((12,)) on a Dense output
    ((2, 3, 4), 1, 1, 1e-5),      # the primitive's defaults
    ((2, 3, 4), 2, 1, 1e-3),      # rows of 4, parameters [3, 4]
    ((2, 3, 4), 1, 2, 1e-3),      # rows of 12, parameters [4]
    ((2, 3, 4, 5), -2, -3, 1e-5),
    ((5, 6), 0, 0, 1e-5),         # one row: the whole tensor
]


def _attrs(bna, bpa, eps):
    return {"begin_norm_axis": bna, "begin_params_axis": bpa, "epsilon": eps}


def _types(arrays):
    return [TensorType(a.shape, dtypes.from_numpy(a.dtype)) for a in arrays]


def _run(opdef, ins, attrs, outs=None, workspace=True):
    """The op's kernel as the runtime calls it: outputs (and workspaces) preallocated,
    filled with NaN so a value the kernel does not write shows."""
    attrs = opdef.complete_attrs(attrs)
    types = opdef.infer_types(_types(ins), attrs)
    if outs is None:
        outs = [np.full(t.shape, np.nan, t.dtype.np) for t in types]
    scratch = [np.full(t.shape, np.nan, t.dtype.np)
               for t in opdef.workspace_types(_types(ins), attrs)] if workspace else []
    opdef.kernel(list(ins), outs + scratch, attrs, RunContext())
    return outs


def _inputs(shape, bpa, dt, rng):
    p = shape[bpa % len(shape):]
    x = (rng.standard_normal(shape) * 3 + 2).astype(dt)
    return x, rng.standard_normal(p).astype(dt), rng.standard_normal(p).astype(dt)


def _numpy_layer_norm(x, gamma, beta, bna, eps):
    axes = tuple(range(bna % x.ndim, x.ndim))
    x64 = x.astype(np.float64)
    mean = x64.mean(axis=axes, keepdims=True)
    var = x64.var(axis=axes, keepdims=True)
    return (x64 - mean) / np.sqrt(var + eps) * gamma + beta, mean, var


# -- the forward kernel ----------------------------------------------------------------------
@pytest.mark.parametrize("dt", [np.float32, np.float64])
@pytest.mark.parametrize("shape,bna,bpa,eps", GEOMETRIES)
def test_forward_kernel_matches_numpy(shape, bna, bpa, eps, dt):
    x, gamma, beta = _inputs(shape, bpa, dt, np.random.default_rng(0))
    y, mean, var = _run(LN, [x, gamma, beta], _attrs(bna, bpa, eps))
    ry, rmean, rvar = _numpy_layer_norm(x, gamma, beta, bna, eps)
    tol = {"rtol": 1e-5, "atol": 1e-5} if dt == np.float32 else {"rtol": 1e-12, "atol": 1e-12}
    for got, want in ((y, ry), (mean, rmean), (var, rvar)):
        assert got.shape == want.shape and got.dtype == dt  # kept dims, as MindSpore's
        np.testing.assert_allclose(got, want, **tol)


def test_forward_kernel_may_write_y_over_x():
    """``inplace = {0: 0}``: the runtime may hand the kernel x's own buffer as y."""
    x, gamma, beta = _inputs((6, 10), -1, np.float32, np.random.default_rng(1))
    a = _attrs(-1, -1, 1e-5)
    want = _run(LN, [x, gamma, beta], a)
    buf = x.copy()
    outs = [buf, np.empty((6, 1), np.float32), np.empty((6, 1), np.float32)]
    _run(LN, [buf, gamma, beta], a, outs=outs)
    for got, w in zip(outs, want):
        np.testing.assert_array_equal(got, w)


# -- the gradient kernel ---------------------------------------------------------------------
@pytest.mark.parametrize("shape,bna,bpa,eps", GEOMETRIES)
def test_gradient_kernel_matches_finite_differences(shape, bna, bpa, eps):
    """d/dt sum(r * LayerNorm(x + t dx, gamma + t dg, beta + t db)) against what
    LayerNormGrad(x, r, variance, mean, gamma) gives, in float64, for each input alone."""
    rng = np.random.default_rng(2)
    x, gamma, beta = _inputs(shape, bpa, np.float64, rng)
    a = _attrs(bna, bpa, eps)
    r = rng.standard_normal(shape)
    _, mean, var = _run(LN, [x, gamma, beta], a)
    grads = _run(LNG, [x, r, var, mean, gamma], a)
    base = [x, gamma, beta]
    h = 1e-6
    for k, grad in enumerate(grads):
        d = rng.standard_normal(base[k].shape)

        def f(t, k=k, d=d):
            moved = [v + t * d if j == k else v for j, v in enumerate(base)]
            return float(np.sum(_run(LN, moved, a)[0] * r))

        numeric = (f(h) - f(-h)) / (2 * h)
        assert float(np.sum(grad * d)) == pytest.approx(numeric, rel=1e-6, abs=1e-9), k


def test_gradient_kernel_with_and_without_its_workspace():
    rng = np.random.default_rng(3)
    x, gamma, _ = _inputs((4, 3, 5), 1, np.float32, rng)
    dy = rng.standard_normal(x.shape).astype(np.float32)
    var = rng.uniform(0.5, 2.0, (4, 1, 1)).astype(np.float32)
    mean = rng.standard_normal((4, 1, 1)).astype(np.float32)
    a = _attrs(1, 1, 1e-5)
    assert LNG.workspace_types(_types([x, dy, var, mean, gamma]), LNG.complete_attrs(a)) == \
        [TensorType(x.shape, dtypes.float32)]
    planned = _run(LNG, [x, dy, var, mean, gamma], a)
    alone = _run(LNG, [x, dy, var, mean, gamma], a, workspace=False)
    for p, q in zip(planned, alone):
        np.testing.assert_array_equal(p, q)


# -- against MindSpore 2.10 ------------------------------------------------------------------
def _ms_cases():
    data = np.load(MS210)
    return [pytest.param(k, tuple(c), data,
                         id=f"begin_norm_axis={c[0]:g},begin_params_axis={c[1]:g},eps={c[2]:g}")
            for k, c in enumerate(data["cases"])]


@pytest.mark.parametrize("k,case,data", _ms_cases())
def test_kernels_give_mindspores_numbers(k, case, data):
    """Forward outputs, the bprop's gradients, and the gradient primitive on statistics that
    are not x's (its sum through the mean then matters), as MindSpore 2.10 gave them."""
    assert str(data["mindspore_version"]) == "2.10.0"
    bna, bpa, eps = int(case[0]), int(case[1]), float(case[2])
    a = _attrs(bna, bpa, eps)

    def f(name):
        return data[f"{k}_{name}"]

    def close(got, name):
        want = f(name)
        assert got.shape == want.shape, name
        scale = max(float(np.abs(want).max()), 1e-6)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6 * scale, err_msg=name)

    y, mean, var = _run(LN, [f("x"), f("gamma"), f("beta")], a)
    close(y, "y")
    close(mean, "mean")
    close(var, "variance")
    dx, dgamma, dbeta = _run(LNG, [f("x"), f("sens"), var, mean, f("gamma")], a)
    close(dx, "dx")
    close(dgamma, "dgamma")
    close(dbeta, "dbeta")
    gdx, gdgamma, gdbeta = _run(LNG, [f("x"), f("sens"), f("gvar"), f("gmean"), f("gamma")], a)
    close(gdx, "gdx")
    close(gdgamma, "gdgamma")
    close(gdbeta, "gdbeta")


# -- shape rules -----------------------------------------------------------------------------
F32 = dtypes.float32


@pytest.mark.parametrize("op,types,attrs,message", [
    ("LayerNorm", [(4, 6), (4,), (6,)], {}, "gamma"),
    ("LayerNorm", [(4, 6), (6,), (6,)], {"begin_norm_axis": 2}, "begin_norm_axis"),
    ("LayerNorm", [(4, 6), (4, 6), (4, 6)], {"begin_params_axis": -3}, "begin_params_axis"),
    ("LayerNormGrad", [(4, 6), (4, 5), (4, 1), (4, 1), (6,)], {"begin_norm_axis": -1,
                                                             "begin_params_axis": -1}, "dy"),
    ("LayerNormGrad", [(4, 6), (4, 6), (3, 1), (4, 1), (6,)], {"begin_norm_axis": -1,
                                                             "begin_params_axis": -1},
     "variance"),
])
def test_shape_rules_reject_bad_inputs(op, types, attrs, message):
    opdef = get_op(op)
    with pytest.raises(InferShapeError, match=message):
        opdef.infer_types([TensorType(s, F32) for s in types], opdef.complete_attrs(attrs))


# -- the gradient rule -----------------------------------------------------------------------
def _layer_norm_graph(shape=(4, 6), bna=-1, bpa=-1, eps=1e-3):
    g = Graph("ln")
    rng = np.random.default_rng(4)
    x = g.add_input("x", TensorType(shape, F32))
    p = shape[bpa % len(shape):]
    gamma = g.add_const("norm.gamma", rng.standard_normal(p).astype(np.float32), param=True)
    beta = g.add_const("norm.beta", rng.standard_normal(p).astype(np.float32), param=True)
    node = opset.emit(g, "LayerNorm", [x, gamma, beta], _attrs(bna, bpa, eps),
                      name="Default/norm-LayerNorm/LayerNorm-op0")
    return g, x, gamma, beta, node


def test_grad_rule_emits_mindspores_bprop():
    """One LayerNormGrad(x, dy, variance, mean, gamma) with the forward's axes and epsilon,
    its outputs the gradients of x, gamma and beta (MindSpore's bprop, as 2.10 exports it)."""
    g, x, gamma, beta, node = _layer_norm_graph((2, 3, 4), 1, 2, 1e-3)
    y = node.outputs[0]
    sens = g.add_const("sens", np.ones(y.type.shape, np.float32))
    before = len(g.nodes)
    grads = add_backward(g, y, [gamma, beta], sens)
    new = g.nodes[before:]
    assert [n.op for n in new] == ["LayerNormGrad"]
    (lng,) = new
    assert lng.inputs == [x, sens, node.outputs[2], node.outputs[1], gamma]
    assert lng.attrs == _attrs(1, 2, 1e-3)
    assert lng.name.startswith("Gradients/Default/norm-LayerNorm/Grad_LayerNorm/")
    assert grads[gamma] is lng.outputs[1] and grads[beta] is lng.outputs[2]


# -- MINDIR: the form MindSpore 2.10 exports -------------------------------------------------
def test_mindir_forms_are_mindspores():
    """In 2.10's train export LayerNorm is (x, gamma, beta, begin_norm_axis,
    begin_params_axis, epsilon) and LayerNormGrad (x, dy, variance, mean, gamma,
    begin_norm_axis, begin_params_axis) with epsilon a primitive attribute; our writer lays
    both out the same way, and our reader gives back the IR attributes."""
    theirs = {}
    for op in ("LayerNorm", "LayerNormGrad"):
        (prim_type, ins), = _layout(TRAIN, op)  # one node each
        assert prim_type == PrimType.PRIMITIVE_FUNCTION
        spec = spec_for(op)
        assert spec.function and spec.tuple_output
        assert len(ins) == spec.inputs + len(spec.attr_inputs)
        theirs[op] = ins
    assert theirs["LayerNorm"] == ["T"] * 3 + [-1, -1, pytest.approx(1e-7)]
    assert theirs["LayerNormGrad"] == ["T"] * 5 + [-1, -1]
    prims = {p.op_type: p for p in load_model(TRAIN).primitives}
    assert {a.name for a in prims["LayerNormGrad"].attribute} == {"epsilon"}
    read = mindir.read(TRAIN)
    fwd, = (n for n in read.nodes if n.op == "LayerNorm")
    bwd, = (n for n in read.nodes if n.op == "LayerNormGrad")
    assert fwd.attrs == bwd.attrs == {"begin_norm_axis": -1, "begin_params_axis": -1,
                                      "epsilon": pytest.approx(1e-7)}
    assert bwd.inputs[0] is fwd.inputs[0] and bwd.inputs[4] is fwd.inputs[1]
    assert bwd.inputs[2:4] == [fwd.outputs[2], fwd.outputs[1]]
    assert [v.type.shape for v in fwd.outputs] == [(8, 12), (8, 1), (8, 1)]


def test_our_mindir_matches_mindspores_layout(tmp_path):
    g, x, gamma, _, node = _layer_norm_graph(eps=1e-7)
    dy = g.add_input("dy", TensorType((4, 6), F32))
    grad = opset.emit(g, "LayerNormGrad", [x, dy, node.outputs[2], node.outputs[1], gamma],
                      _attrs(-1, -1, 1e-7), name="Gradients/LayerNormGrad-op0")
    g.outputs = [node.outputs[0], *grad.outputs]
    path = tmp_path / "ln.mindir"
    mindir.write(g, path)
    for op in ("LayerNorm", "LayerNormGrad"):
        ours, theirs = _layout(path, op), _layout(TRAIN, op)
        assert ours == theirs, op
    prims = {p.op_type: p for p in load_model(path).primitives}
    assert "epsilon" in {a.name for a in prims["LayerNormGrad"].attribute}
    back = mindir.read(path)
    for n in back.nodes:
        assert n.attrs == _attrs(-1, -1, pytest.approx(1e-7))


# -- .ms: what MindSpore Lite's converter writes -----------------------------------------
def _ms_nodes(raw: bytes, where: str):
    meta = fbread.decode(raw, where)
    by_member = {}
    for n in meta["nodes"]:
        prim = n["primitive"]
        by_member.setdefault(schema.PRIMITIVE_TYPES[prim["value_type"] - 1], []).append(
            (n, dict(prim.get("value", {}))))
    return meta, by_member


def test_ms_members_and_attributes(tmp_path):
    """LayerNorm is LayerNormFusion (tag 75) with elementwise_affine set; LayerNormGrad (tag
    186) has the axes only, its inputs in MindSpore's order (Lite's kernel reads x, dy,
    variance, mean, gamma), and the reader takes epsilon back from the forward."""
    assert schema.PRIMITIVE_TAG["LayerNormFusion"] == 75
    assert schema.PRIMITIVE_TAG["LayerNormGrad"] == 186
    g, x, gamma, _, node = _layer_norm_graph((2, 3, 4), 1, 2, 1e-3)
    dy = g.add_input("dy", TensorType((2, 3, 4), F32))
    grad = opset.emit(g, "LayerNormGrad", [x, dy, node.outputs[2], node.outputs[1], gamma],
                      _attrs(1, 2, 1e-3), name="Gradients/LayerNormGrad-op0")
    g.outputs = [node.outputs[0], *grad.outputs]
    path = tmp_path / "ln.ms"
    ms.write(g, path)
    meta, nodes = _ms_nodes(path.read_bytes(), "ln.ms")
    (fwd, fa), = nodes["LayerNormFusion"]
    (bwd, ba), = nodes["LayerNormGrad"]
    assert fa["begin_norm_axis"] == 1 and fa["begin_params_axis"] == 2
    assert fa["elementwise_affine"] is True and fa["epsilon"] == pytest.approx(1e-3)
    assert set(ba) <= {"begin_norm_axis", "begin_params_axis"}
    assert (ba.get("begin_norm_axis", 0), ba.get("begin_params_axis", 0)) == (1, 2)
    names = [t["name"] for t in meta["allTensors"]]
    f_in, f_out = list(fwd["inputIndex"]), list(fwd["outputIndex"])
    b_in = list(bwd["inputIndex"])
    assert [names[i] for i in b_in] == ["x", "dy", names[f_out[2]], names[f_out[1]],
                                        "norm.gamma"]
    assert b_in[0] == f_in[0] and b_in[4] == f_in[1]
    back = ms.read(path).graph
    lng, = (n for n in back.nodes if n.op == "LayerNormGrad")
    assert lng.attrs == _attrs(1, 2, pytest.approx(1e-3))


def test_ms_grad_without_its_forward_takes_mindspores_default_epsilon(tmp_path):
    g = Graph("grad_only")
    ins = [g.add_input(n, TensorType(s, F32)) for n, s in
           (("x", (4, 6)), ("dy", (4, 6)), ("var", (4, 1)), ("mean", (4, 1)), ("gamma", (6,)))]
    node = opset.emit(g, "LayerNormGrad", ins, _attrs(-1, -1, 1e-3))
    g.outputs = list(node.outputs)
    ms.write(g, tmp_path / "g.ms")
    lng, = ms.read(tmp_path / "g.ms").graph.nodes
    assert lng.attrs["epsilon"] == LNG.attrs["epsilon"] == 1e-7


def test_converter_writes_the_reference_export_as_lite_does(tmp_path):
    path = convert(str(TRAIN), str(tmp_path / "ln"), True)
    raw = Path(path).read_bytes()
    _, nodes = _ms_nodes(raw, path)
    (fwd, fa), = nodes["LayerNormFusion"]
    (bwd, ba), = nodes["LayerNormGrad"]
    assert (fa["begin_norm_axis"], fa["begin_params_axis"]) == (-1, -1)
    assert fa["elementwise_affine"] is True and fa["epsilon"] == pytest.approx(1e-7)
    assert (ba["begin_norm_axis"], ba["begin_params_axis"]) == (-1, -1)
    f_in, f_out, b_in = (list(fwd["inputIndex"]), list(fwd["outputIndex"]),
                         list(bwd["inputIndex"]))
    assert len(f_out) == 3 and len(b_in) == 5 and len(bwd["outputIndex"]) == 3
    assert b_in[0] == f_in[0] and b_in[2:] == [f_out[2], f_out[1], f_in[1]]
    lng, = (n for n in ms.read(path).graph.nodes if n.op == "LayerNormGrad")
    assert lng.attrs["epsilon"] == pytest.approx(1e-7)
