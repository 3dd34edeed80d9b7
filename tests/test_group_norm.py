"""nn.GroupNorm as MindSpore 2.10 exports it (todkit/opset/group_norm.py): how the reader
takes GroupNorm / GroupNormGrad, how the converter writes them for MindSpore Lite
(GroupNormFusion, and GroupNormGrad spelled with ops Lite has, the statistics recomputed),
what those ops compute against the GroupNormGrad kernel, the front end's nn.GroupNorm on the
device, and the errors. tests/test_reference_runs.py trains the real export
(tests/fixtures/reference/groupnorm_momentum) against MindSpore's numbers, and
tests/test_frontend_reference_runs.py the front end from MindSpore's initial parameters."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import todkit as M
from todkit import lite, nn
from todkit.converter.convert import convert
from todkit.converter.lite_forms import group_norm_grads_with_lite_ops
from todkit.core import dtypes
from todkit.core.errors import InferShapeError, NotSupportedError
from todkit.formats import mindir, ms
from todkit.formats.mindir.lowered import LOWERED
from todkit.formats.mindir.schema import load_model
from todkit.formats.ms import optable as ms_optable
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit, verify
from todkit.opset.interpret import interpret

RUN = Path(__file__).resolve().parent / "fixtures" / "reference" / "groupnorm_momentum"
LITE_GRAD_OPS = {"Reshape", "ReduceMean", "ReduceSum", "Sub", "Mul", "Add", "Sqrt", "RealDiv"}


# -- what 2.10 writes and how it is read -------------------------------------------------------
def test_the_2_10_export_carries_num_groups_between_the_tensors():
    """The real file: GroupNorm(x, num_groups, gamma, beta, eps) and GroupNormGrad(dy, x,
    mean, rstd, gamma, num_groups, True, True, True), every number a Constant input."""
    m = load_model(RUN / "train.mindir")
    prims = {p.name: p.op_type for p in m.primitives}
    consts = {n.output[0] for n in m.graph.node if n.op_type == "Constant"}
    forms = {}
    for n in m.graph.node:
        op = prims.get(n.op_type[5:]) if n.op_type.startswith("REF::") else n.op_type
        if op in ("GroupNorm", "GroupNormGrad"):
            forms[op] = ["const" if i in consts else "value" for i in n.input]
    assert forms["GroupNorm"] == ["value", "const", "value", "value", "const"]
    assert forms["GroupNormGrad"] == ["value"] * 5 + ["const"] * 4


def test_the_reader_takes_mindspores_group_norm_and_its_gradient():
    g = mindir.read(RUN / "train.mindir")
    (fwd,) = [n for n in g.nodes if n.op == "GroupNorm"]
    (bwd,) = [n for n in g.nodes if n.op == "GroupNormGrad"]
    assert fwd.attrs["num_groups"] == 2 and fwd.attrs["epsilon"] == pytest.approx(1e-5)
    assert [v.type for v in fwd.outputs] == [TensorType((8, 4, 8, 8), dtypes.float32),
                                            TensorType((8, 2), dtypes.float32),
                                            TensorType((8, 2), dtypes.float32)]
    assert [v.name for v in fwd.inputs[1:]] == ["norm.gamma", "norm.beta"]
    assert bwd.inputs[1] is fwd.inputs[0]
    assert bwd.inputs[2:5] == [fwd.outputs[1], fwd.outputs[2], fwd.inputs[1]]
    assert bwd.attrs == {"num_groups": 2, "dx_is_require": True, "dgamma_is_require": True,
                         "dbeta_is_require": True}


# -- what the converter writes ------------------------------------------------------------------
def test_the_converted_file_has_lite_ops_only_and_group_norm_reads_nchw(tmp_path):
    out = convert(str(RUN / "train.mindir"), str(tmp_path / "gn"), True)
    g = ms.read(out).graph
    ops = {n.op for n in g.nodes}
    assert "GroupNormGrad" not in ops and all(op in ms_optable.BY_IR for op in ops)
    (fwd,) = [n for n in g.nodes if n.op == "GroupNorm"]
    assert ms_optable.BY_IR["GroupNorm"].ms == "GroupNormFusion"
    assert fwd.attrs["num_groups"] == 2 and fwd.attrs["epsilon"] == pytest.approx(1e-5)
    # Lite's kernel refuses anything but NCHW: the NHWC conv output comes back through _post
    x = fwd.inputs[0]
    assert x.format == "NCHW" and x.producer.op == "Transpose"
    assert x.producer.attrs["perm"] == (0, 3, 1, 2)
    # Lite's GroupNormFusion leaves mean and rstd unwritten: nothing may read them
    assert not fwd.outputs[1].users and not fwd.outputs[2].users
    # the gradient: Lite ops named under MindSpore's GroupNormGrad, so still gradient nodes
    grad = [n for n in g.nodes if "Grad_GroupNorm/GroupNormGrad-op0/" in n.name]
    assert {n.op for n in grad} == LITE_GRAD_OPS
    assert all(n.name.startswith("Gradients/") for n in grad)


def _gn_graph(shape, groups, eps, given_stats, dtype):
    """x, gamma, beta, dy -> GroupNorm -> GroupNormGrad(dy, x, mean, rstd, gamma), the
    statistics from the GroupNorm or (given_stats) graph inputs of their own."""
    dt = dtypes.from_numpy(np.dtype(dtype))
    g = Graph("gn")
    x = g.add_input("x", TensorType(shape, dt))
    gamma = g.add_input("gamma", TensorType(shape[1:2], dt))
    beta = g.add_input("beta", TensorType(shape[1:2], dt))
    dy = g.add_input("dy", TensorType(shape, dt))
    fwd = emit(g, "GroupNorm", [x, gamma, beta], {"num_groups": groups, "epsilon": eps},
               name="Default/GroupNorm-op0")
    stats = fwd.outputs[1:]
    if given_stats:
        stats = [g.add_input(k, TensorType((shape[0], groups), dt)) for k in ("mean", "rstd")]
    bwd = emit(g, "GroupNormGrad", [dy, x, *stats, gamma], {"num_groups": groups},
               name="Gradients/Default/Grad_GroupNorm/GroupNormGrad-op0")
    g.outputs = [fwd.outputs[0], *bwd.outputs]
    return g


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("given_stats", [False, True])
@pytest.mark.parametrize("shape,groups", [((3, 4, 5, 6), 2), ((2, 6, 7), 3), ((5, 4), 4),
                                          ((2, 6, 2, 3, 2), 1)])
def test_the_lite_form_of_the_gradient_computes_the_kernels_numbers(shape, groups, given_stats,
                                                                    dtype):
    g = _gn_graph(shape, groups, 1e-3, given_stats, dtype)
    rng = np.random.default_rng(7)
    feeds = {v: rng.standard_normal(v.type.shape).astype(dtype) for v in g.inputs}
    for v in g.inputs:
        if v.name == "rstd":
            feeds[v] = rng.uniform(0.5, 2.0, v.type.shape).astype(dtype)
    want = interpret(g, feeds)
    group_norm_grads_with_lite_ops(g)
    verify(g, "after the pass")
    assert "GroupNormGrad" not in {n.op for n in g.nodes}
    assert {n.op for n in g.nodes} <= LITE_GRAD_OPS | {"GroupNorm"}
    if not given_stats:  # the recomputed statistics leave the forward's outputs 1, 2 unread
        assert not g.nodes[0].outputs[1].users and not g.nodes[0].outputs[2].users
    got = interpret(g, feeds)
    tol = {"rtol": 1e-4, "atol": 1e-5} if dtype == np.float32 else {"rtol": 1e-10, "atol": 1e-12}
    for k, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"output {k}", **tol)


def test_only_the_wanted_gradients_are_written():
    g = _gn_graph((2, 4, 3, 3), 2, 1e-5, False, np.float32)
    g.outputs = g.outputs[:2]  # dx only
    group_norm_grads_with_lite_ops(g)
    names = [n.name.rsplit("/", 1)[-1] for n in g.nodes]
    assert "dx" in names and "dgamma" not in names and "dbeta" not in names
    g = _gn_graph((2, 4, 3, 3), 2, 1e-5, False, np.float32)
    g.outputs = g.outputs[3:]  # dbeta only: no statistics at all
    group_norm_grads_with_lite_ops(g)
    assert [n.op for n in g.nodes] == ["GroupNorm", "Reshape", "ReduceSum"]


# -- the front end ----------------------------------------------------------------------------
class _ImageNet(nn.Cell):
    """GroupNorm straight on the (NHWC on the device) image, then a conv reading its output."""

    def __init__(self, affine=True):
        super().__init__()
        self.norm = nn.GroupNorm(3, 3, affine=affine)
        self.conv = nn.Conv2d(3, 4, 3)
        self.flatten = nn.Flatten()
        self.fc = nn.Dense(4 * 8 * 8, 5)

    def construct(self, x):
        return self.fc(self.flatten(self.conv(self.norm(x))))


class _SequenceNet(nn.Cell):
    """Dense -> (N, 6, 4) -> GroupNorm(3, 6, eps=1e-3) on 3-D input -> Dense."""

    def __init__(self, affine=True):
        super().__init__()
        self.fc1 = nn.Dense(16, 24)
        self.norm = nn.GroupNorm(3, 6, eps=1e-3, affine=affine, gamma_init="normal",
                                 beta_init="normal")
        self.flatten = nn.Flatten()
        self.fc2 = nn.Dense(24, 5)

    def construct(self, x):
        h = self.fc1(x).reshape(x.shape[0], 6, 4)
        return self.fc2(self.flatten(self.norm(h)))


@pytest.mark.parametrize("make,shape", [(_ImageNet, (6, 3, 8, 8)),
                                        (lambda: _ImageNet(affine=False), (6, 3, 8, 8)),
                                        (_SequenceNet, (6, 16)),
                                        (lambda: _SequenceNet(affine=False), (6, 16))],
                         ids=["image", "image_frozen_affine", "sequence",
                              "sequence_frozen_affine"])
def test_front_end_group_norm_trains_on_the_device_as_it_does_eagerly(make, shape, tmp_path):
    M.set_seed(3)
    net = make()
    train = nn.TrainOneStepCell(
        nn.WithLossCell(net, nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")),
        nn.Momentum(net.trainable_params(), learning_rate=0.1, momentum=0.9))
    train.set_train(True)
    rng = np.random.default_rng(5)
    x = rng.standard_normal(shape).astype(np.float32)
    y = rng.integers(0, 5, shape[0]).astype(np.int32)
    M.export(train, M.Tensor(x), M.Tensor(y), file_name=str(tmp_path / "gn"),
             file_format="MINDIR")
    path = convert(str(tmp_path / "gn.mindir"), str(tmp_path / "gn"), True)
    assert "GroupNormGrad" not in {n.op for n in ms.read(path).graph.nodes}
    model = lite.Model()
    model.build_from_file(path, lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    data.set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)) if x.ndim == 4
                             else x)
    label.set_data_from_numpy(y)
    model.set_train_mode(True)
    device = []
    for _ in range(4):
        model.run_step()
        device.append(float(model.get_outputs()[0].get_data_to_numpy().reshape(-1)[0]))
    eager = [float(train(M.Tensor(x), M.Tensor(y)).asnumpy()) for _ in range(4)]
    np.testing.assert_allclose(device, eager, rtol=1e-5, atol=1e-6)
    assert eager[-1] < eager[0]


def test_front_end_parameters_are_mindspores():
    norm = nn.GroupNorm(2, 4)
    assert [p.name for p in norm.trainable_params()] == ["gamma", "beta"]
    np.testing.assert_array_equal(norm.gamma.asnumpy(), np.ones(4, np.float32))
    np.testing.assert_array_equal(norm.beta.asnumpy(), np.zeros(4, np.float32))
    frozen = nn.GroupNorm(2, 4, affine=False)
    assert not frozen.trainable_params() and len(list(frozen.get_parameters())) == 2
    with pytest.raises(ValueError, match="divisible"):
        nn.GroupNorm(3, 4)
    with pytest.raises(TypeError, match="eps"):
        nn.GroupNorm(2, 4, eps=1)
    with pytest.raises(ValueError, match=r"\(N, 4, \.\.\.\)"):
        norm(M.Tensor(np.zeros((2, 3, 5), np.float32)))


def test_todkits_own_export_reads_back_as_group_norm(tmp_path):
    """todkit writes GroupNorm in the generic form (attributes in the primitive) and its
    gradient in MindSpore's; both read back as they were."""
    g = _gn_graph((2, 4, 3, 3), 2, 1e-3, False, np.float32)
    mindir.write(g, tmp_path / "gn.mindir")
    back = mindir.read(tmp_path / "gn.mindir")
    fwd, bwd = [n for n in back.nodes]
    assert (fwd.op, bwd.op) == ("GroupNorm", "GroupNormGrad")
    assert fwd.attrs["num_groups"] == 2 and fwd.attrs["epsilon"] == pytest.approx(1e-3)
    assert bwd.inputs[2:4] == fwd.outputs[1:3]


# -- errors -----------------------------------------------------------------------------------
def test_bad_group_norms_fail_naming_the_node():
    g = Graph("bad")
    x = g.add_input("x", TensorType((2, 6, 3), dtypes.float32))
    gamma = g.add_input("gamma", TensorType((6,), dtypes.float32))
    with pytest.raises(InferShapeError, match="Default/norm.*num_groups 4 .* divide the 6"):
        emit(g, "GroupNorm", [x, gamma, gamma], {"num_groups": 4}, name="Default/norm")
    short = g.add_input("short", TensorType((4,), dtypes.float32))
    with pytest.raises(InferShapeError, match="Default/norm.*gamma \\[4\\] must be \\(6,\\)"):
        emit(g, "GroupNorm", [x, short, gamma], {"num_groups": 3}, name="Default/norm")
    groups = g.add_input("groups", TensorType((), dtypes.int32))
    eps = g.add_const("eps", np.array(1e-5, np.float32))
    with pytest.raises(NotSupportedError, match="'Default/norm'.*num_groups must be a constant"):
        LOWERED["GroupNorm"].lower(g, [x, groups, gamma, gamma, eps], {}, "Default/norm")
    with pytest.raises(NotSupportedError, match="'Default/norm'.*4 inputs"):
        LOWERED["GroupNorm"].lower(g, [x, gamma, gamma, eps], {}, "Default/norm")
