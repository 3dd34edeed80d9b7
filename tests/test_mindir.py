"""The MINDIR codec against real MindSpore files (shared/corpus) and against itself.

Files using an op the opset does not have yet are skipped with the op named; the BatchNorm
files check the OpNotFoundError listing instead until BatchNorm lands.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

from tests.shared_paths import CORPUS, LITE, MS210, ROOT, SHARED  # noqa: F401
from todkit.core import dtypes
from todkit.core.errors import (
    GraphFileError,
    NotSupportedError,
    OpNotFoundError,
    ParamError,
    TodkitError,
)
from todkit.formats import mindir
from todkit.formats.mindir import load_model, pb, read, to_model_proto, write
from todkit.ir.graph import Graph, TensorType
from todkit.opset import OPS, emit
from todkit.opset.interpret import interpret

A = pb.AttributeProto

needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"no corpus at {CORPUS}")

ALL_MINDIR = sorted(str(p.relative_to(CORPUS)) for p in CORPUS.glob("*/*.mindir")) \
    if CORPUS.is_dir() else []


def read_or_skip(path) -> Graph:
    """read(), skipping (with the ops named) only where the opset lacks an op."""
    try:
        return read(path)
    except OpNotFoundError as e:
        pytest.skip(f"opset lacks {sorted(e.missing)} used by {Path(path).name}")


def file_ops(path) -> set[str]:
    m = load_model(path)
    prims = {p.name: p.op_type for p in m.primitives}
    return {prims[n.op_type[5:]] for n in m.graph.node if n.op_type.startswith("REF::")}


def signature(g: Graph):
    """Everything a round trip must keep: ops, names, attrs, wiring, types, constant bytes."""
    return (
        g.name, dict(g.attrs),
        [(v.name, v.type) for v in g.inputs],
        [(c.name, c.param, c.data.dtype.str, c.data.shape, c.data.tobytes()) for c in g.consts],
        [(n.op, n.name, repr(sorted(n.attrs.items())), [v.name for v in n.inputs],
          [(v.name, v.type) for v in n.outputs]) for n in g.nodes],
        [v.name for v in g.outputs],
    )


def random_feeds(g: Graph, seed=0):
    rng = np.random.default_rng(seed)
    feeds = {}
    for v in g.inputs:
        t = v.type
        if t.dtype.np.kind == "f":
            feeds[v] = rng.standard_normal(t.shape).astype(t.dtype.np)
        else:  # labels: sparse class ids below the class count of the logits
            feeds[v] = rng.integers(0, 3, size=t.shape).astype(t.dtype.np)
    return feeds


def run(g: Graph, seed=0):
    feeds = random_feeds(g, seed)
    outs = interpret(g, feeds)
    return [np.array(o) for o in outs], {c.name: c.data.copy() for c in g.consts if c.param}


# -- the schema ----------------------------------------------------------------------------
_PROTO_TYPES = {1: "double", 2: "float", 3: "int64", 4: "uint64", 5: "int32", 8: "bool",
                9: "string", 12: "bytes", 13: "uint32"}
_LABELS = {1: "optional", 2: "required", 3: "repeated"}


@pytest.mark.skipif(not (SHARED / "reference" / "mind_ir_fields.md").is_file(),
                    reason="reference/mind_ir_fields.md not available")
def test_proto_matches_reference_field_table():
    text = (SHARED / "reference" / "mind_ir_fields.md").read_text()
    checked = 0
    for block in re.split(r"^## message ", text, flags=re.MULTILINE)[1:]:
        msg = block.split("\n", 1)[0].strip()
        desc = pb.DESCRIPTOR.message_types_by_name[msg.split(".")[0]]
        for part in msg.split(".")[1:]:
            desc = desc.nested_types_by_name[part]
        for num, name, label, typ in re.findall(
                r"^\| (\d+) \| `(\w+)` \| (\w+) \| `([\w.]+)` \|", block, flags=re.MULTILINE):
            f = desc.fields_by_name[name]
            assert f.number == int(num), (msg, name)
            label_of = "repeated" if f.is_repeated else \
                ("required" if f.is_required else "optional")
            assert label_of == label, (msg, name)
            got = f.message_type.full_name if f.message_type else \
                f.enum_type.full_name if f.enum_type else _PROTO_TYPES[f.type]
            assert got.removeprefix("mind_ir.") == typ, (msg, name, got)
            checked += 1
        assert len(desc.fields) == len(re.findall(r"^\| \d+ \|", block, flags=re.MULTILINE)), msg
    assert checked > 100
    assert pb.IR_VERSION_WITH_SCALAR_GRAPH_HOLDER == 3
    assert pb.PrimitiveProto.PRIMITIVE_FUNCTION == 2
    assert A.SCALAR_GRAPH_HOLDER == 40 and pb.TensorProto.QINT4X2 == 18


def test_regen_script_and_proto_ship_together():
    here = Path(mindir.__file__).parent
    assert (here / "mind_ir.proto").is_file() and os.access(here / "regen.sh", os.X_OK)
    assert 'package mind_ir;' in (here / "mind_ir.proto").read_text()


# -- reading real files --------------------------------------------------------------------
@needs_corpus
@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
@pytest.mark.parametrize("form", ["ms210", "v1"])
def test_read_tiny_train(opt, form):
    path = LITE / f"tiny_{opt}_train.{form}.mindir"
    g = read_or_skip(path)
    assert [(v.name, v.type) for v in g.inputs] == [
        ("inputs0", TensorType((2, 4), dtypes.float32)),
        ("inputs1", TensorType((2,), dtypes.int32))]
    assert len(g.outputs) == 1 and g.outputs[0].type == TensorType((), dtypes.float32)
    loss = g.outputs[0].producer
    assert loss.op == "SparseSoftmaxCrossEntropyWithLogits" and loss.attrs["is_grad"] is False
    assert loss.name == ("Default/network-WithLossCell/_loss_fn-SoftmaxCrossEntropyWithLogits/"
                         "SparseSoftmaxCrossEntropyWithLogits-op0")
    assert g.attrs == {"training": True}
    opt_op = {"adam": "Adam", "momentum": "ApplyMomentum", "sgd": "SGD"}[opt]
    counts = g.op_counts()
    assert counts[opt_op] == 2 and counts["MatMul"] == 2 and counts["BiasAdd"] == 1
    assert counts["BiasAddGrad"] == 1 and counts["AssignAdd"] == 1
    assert counts["SparseSoftmaxCrossEntropyWithLogits"] == 2
    assert not {"Load", "UpdateState", "Depend", "MakeTuple", "TupleGetItem"} & set(counts)
    fwd, dw = [n for n in g.nodes if n.op == "MatMul"]
    assert fwd.attrs == {"transpose_a": False, "transpose_b": True}
    assert dw.attrs == {"transpose_a": True, "transpose_b": False}
    assert fwd.name == "Default/network-WithLossCell/_backbone-Tiny/fc-Dense/MatMul-op0"
    assert next(n for n in g.nodes if n.op == "BiasAdd").attrs == {"data_format": "NCHW"}
    # Parameters: every one, named by ref_key, with the file's bytes.
    model = load_model(path)
    params = {c.name: c for c in g.consts if c.param}
    assert set(params) == {p.ref_key for p in model.graph.parameter}
    for p in model.graph.parameter:
        assert params[p.ref_key].data.tobytes() == p.raw_data
        assert params[p.ref_key].type.shape == tuple(p.dims)
    assert params["global_step"].type == TensorType((1,), dtypes.int32)
    # Trainable = input 0 of the optimizer ops, as Lite derives it.
    trained = {n.inputs[0].name for n in g.nodes if n.op == opt_op}
    assert trained == {"fc.weight", "fc.bias"}
    opt_node = next(n for n in g.nodes if n.op == opt_op)
    if opt == "adam":
        assert opt_node.attrs == {"use_locking": False, "use_nesterov": False}
        assert [v.name for v in opt_node.inputs[:3]] == ["fc.weight", "moment1.fc.weight",
                                                         "moment2.fc.weight"]
        assert opt_node.inputs[6].name == "beta1" and not opt_node.inputs[6].param
        assert counts["Assign"] == 2 and counts["AddN"] == 2  # powers; weight decay + grad
    elif opt == "momentum":
        assert opt_node.attrs == {"use_nesterov": False, "use_locking": False,
                                  "gradient_scale": 1.0}
        assert [v.name for v in opt_node.inputs] == [
            "fc.bias", "moments.fc.bias", "learning_rate", opt_node.inputs[3].name, "momentum"]
    else:
        assert opt_node.attrs == {"dampening": 0.0, "weight_decay": 0.0, "nesterov": False}
        assert [v.name for v in opt_node.inputs][2:] == [
            "learning_rate", "accum.fc.bias", "momentum", "stat.fc.bias"]


@needs_corpus
@pytest.mark.parametrize("opt", ["adam", "momentum", "sgd"])
def test_v1_and_2x_forms_give_the_same_graph(opt):
    g2 = read_or_skip(LITE / f"tiny_{opt}_train.ms210.mindir")
    g1 = read_or_skip(LITE / f"tiny_{opt}_train.v1.mindir")
    def rows(g):
        return [(n.op, n.name, n.attrs) for n in g.nodes]

    assert rows(g1) == rows(g2)
    assert [(c.name, c.data.tobytes()) for c in g1.consts] == \
        [(c.name, c.data.tobytes()) for c in g2.consts]
    np.testing.assert_array_equal(run(g1)[0][0], run(g2)[0][0])


@needs_corpus
def test_read_mlp_digits_and_train_it_like_mindspore():
    g = read_or_skip(MS210 / "mlp_digits_train.mindir")
    assert g.op_counts() == {"MatMul": 5, "BiasAdd": 2, "ReLU": 1,
                             "SparseSoftmaxCrossEntropyWithLogits": 2, "AssignAdd": 1, "Mul": 2,
                             "Assign": 2, "ReluGrad": 1, "Adam": 4, "BiasAddGrad": 2}
    assert [(v.name, v.type) for v in g.inputs] == [
        ("inputs0", TensorType((32, 64), dtypes.float32)),
        ("inputs1", TensorType((32,), dtypes.int32))]
    run_dir = MS210 / "mlp_digits_run"
    state = np.load(run_dir / "init_train_state.npz")
    params = {c.name: c for c in g.consts if c.param}
    assert set(params) == set(state.files)
    for k in state.files:
        assert params[k].data.dtype == state[k].dtype
        np.testing.assert_array_equal(params[k].data, state[k], err_msg=k)
    assert {n.inputs[0].name for n in g.nodes if n.op == "Adam"} == {
        "fc1.weight", "fc1.bias", "fc2.weight", "fc2.bias"}
    # 20 MindSpore training steps, replayed by the reference interpreter on the read graph.
    ref = json.loads((run_dir / "losses.json").read_text())
    xs, ys = np.load(run_dir / "ref_x.npy"), np.load(run_dir / "ref_y.npy")
    losses = []
    for i in range(ref["steps"]):
        (loss,) = interpret(g, {g.inputs[0]: xs[i % 4], g.inputs[1]: ys[i % 4]})
        losses.append(float(loss))
    np.testing.assert_allclose(losses, ref["loss"], rtol=0, atol=1e-5)
    final = np.load(run_dir / "final_weights.npz")
    for k in final.files:
        np.testing.assert_allclose(params[k].data, final[k], rtol=0, atol=1e-5, err_msg=k)
    assert int(params["global_step"].data[0]) == ref["steps"]


@needs_corpus
def test_read_seed_my_net():
    g = read_or_skip(MS210 / "my_net_tod.mindir")
    assert g.op_counts() == {"Reshape": 1, "MatMul": 2, "BiasAdd": 1,
                             "SoftmaxCrossEntropyWithLogits": 1, "AssignAdd": 1, "Mul": 3,
                             "Assign": 2, "ExpandDims": 1, "Adam": 2, "BiasAddGrad": 1}
    reshape = g.nodes[0]
    assert reshape.op == "Reshape" and reshape.attrs == {"shape": (-1, 150528)}
    assert reshape.inputs[0].name == "inputs0"
    ce = next(n for n in g.nodes if n.op == "SoftmaxCrossEntropyWithLogits")
    assert [v.type for v in ce.outputs] == [TensorType((32,), dtypes.float32),
                                            TensorType((32, 10), dtypes.float32)]
    assert g.outputs == [ce.outputs[0]]  # per-sample loss, through the Depend chain
    expand = next(n for n in g.nodes if n.op == "ExpandDims")
    assert expand.attrs == {"axis": -1}
    sens = expand.inputs[0]
    assert not sens.param and np.all(sens.data == 1) and sens.type.shape == (32,)
    grad_mul = expand.outputs[0].users[0]
    assert grad_mul.op == "Mul" and grad_mul.inputs[0] is ce.outputs[1]  # TupleGetItem 1
    assert g.attrs == {}  # this export has no `training` graph attribute
    assert g.value("fc.weight").type == TensorType((10, 150528), dtypes.float32)


@needs_corpus
def test_read_lenet_train():
    g = read_or_skip(LITE / "lenet_tod.ms210.mindir")
    c = g.op_counts()
    assert c["Conv2D"] == 2 and c["MaxPool"] == 2 and c["MaxPoolGrad"] == 2
    assert c["Conv2DBackpropInput"] == 1 and c["Conv2DBackpropFilter"] == 2 and c["Adam"] == 8
    conv1, conv2 = [n for n in g.nodes if n.op == "Conv2D"]
    assert conv1.attrs["out_channel"] == 6 and conv2.attrs["out_channel"] == 16
    for n in (conv1, conv2):
        assert n.attrs["kernel_size"] == (5, 5) and n.attrs["stride"] == (1, 1)
        assert n.attrs["dilation"] == (1, 1) and n.attrs["pad_mode"] == "valid"
        assert n.attrs["pad_list"] == (0, 0, 0, 0) and n.attrs["group"] == 1
    pool = next(n for n in g.nodes if n.op == "MaxPool")
    assert pool.attrs == {"kernel_size": (2, 2), "strides": (2, 2), "pad_mode": "valid",
                          "format": "NCHW"}
    (dx,) = [n for n in g.nodes if n.op == "Conv2DBackpropInput"]
    assert dx.attrs["input_sizes"] == (32, 6, 14, 14) and dx.attrs["pad_mode"] == "valid"
    dws = [n for n in g.nodes if n.op == "Conv2DBackpropFilter"]
    assert sorted(n.attrs["filter_sizes"] for n in dws) == [(6, 1, 5, 5), (16, 6, 5, 5)]
    assert g.outputs[0].type == TensorType((), dtypes.float32)


@needs_corpus
def test_read_lenet_infer():
    g = read_or_skip(MS210 / "lenet5_infer.mindir")
    assert [(v.name, v.type) for v in g.inputs] == [
        ("x", TensorType((32, 1, 32, 32), dtypes.float32))]
    assert g.outputs[0].type == TensorType((32, 10), dtypes.float32)
    assert g.op_counts() == {"Conv2D": 2, "ReLU": 4, "MaxPool": 2, "Flatten": 1, "MatMul": 3,
                             "BiasAdd": 3}
    assert g.attrs == {"training": False}
    assert sorted(c.name for c in g.consts if c.param) == sorted(
        [f"{layer}.{p}" for layer in ("fc1", "fc2", "fc3") for p in ("weight", "bias")]
        + ["conv1.weight", "conv2.weight"])
    (out,) = run(g)[0]
    assert out.shape == (32, 10) and np.isfinite(out).all()


@needs_corpus
@pytest.mark.parametrize("name", ["smallcnn_bn_sgd_train", "smallcnn_bn_infer",
                                  "resnet_tl_head_train"])
def test_batchnorm_files(name):
    path = MS210 / f"{name}.mindir"
    lacking = {op for op in file_ops(path) if op not in OPS} - mindir.optable.PLUMBING
    if not lacking:
        g = read(path)
        assert "BatchNorm" in g.op_counts()
        return
    with pytest.raises(OpNotFoundError) as e:
        read(path)
    assert set(e.value.missing) == lacking  # every lacking op at once, nothing else
    assert str(path) in str(e.value)
    if "BatchNorm" in lacking:
        scope = "SmallCNN" if "smallcnn" in name else "TransferNet"
        assert any(f"_backbone-{scope}/" in n and n.endswith("BatchNorm-op0")
                   for n in e.value.missing["BatchNorm"])
        for node_name in e.value.missing["BatchNorm"]:
            assert node_name in str(e.value)


@needs_corpus
@pytest.mark.parametrize("rel", ALL_MINDIR)
def test_corpus_round_trip(rel, tmp_path):
    """read -> write -> read keeps the graph, and write is stable from then on."""
    path = CORPUS / rel
    g = read_or_skip(path)
    write(g, tmp_path / "a.mindir")
    g2 = read(tmp_path / "a.mindir")
    assert signature(g2) == signature(g)
    write(g2, tmp_path / "b.mindir")
    assert (tmp_path / "a.mindir").read_bytes() == (tmp_path / "b.mindir").read_bytes()
    outs1, params1 = run(read(path))
    outs2, params2 = run(read(tmp_path / "a.mindir"))
    for a, b in zip(outs1, outs2, strict=True):
        np.testing.assert_array_equal(a, b)
    for k in params1:
        np.testing.assert_array_equal(params1[k], params2[k], err_msg=k)


@needs_corpus
def test_round_trip_of_the_seed_file(tmp_path):
    g = read_or_skip(MS210 / "my_net_tod.mindir")
    write(g, tmp_path / "seed.mindir")
    assert signature(read(tmp_path / "seed.mindir")) == signature(g)


# -- what the writer puts in the file ------------------------------------------------------
def small_train_graph() -> Graph:
    """Reshape/Transpose/MatMul/BiasAdd/dense CE with its two outputs, ExpandDims, AddN and
    ApplyMomentum, with non-ASCII names as MindSpore makes them."""
    f32 = dtypes.float32
    g = Graph("7_5_net_▸_construct_3")
    x = g.add_input("inputs0", TensorType((2, 12), f32))
    y = g.add_input("inputs1", TensorType((2, 5), f32))
    rng = np.random.default_rng(1)
    w = g.add_const("fc.weight", rng.standard_normal((5, 12)).astype(np.float32), param=True)
    b = g.add_const("fc.bias", np.zeros(5, np.float32), param=True)
    acc = g.add_const("moments.fc.weight", np.zeros((5, 12), np.float32), param=True)
    lr = g.add_const("learning_rate", np.float32(0.1), param=True)
    mom = g.add_const("momentum", np.float32(0.9), param=True)
    sens = g.add_const("▸Parameter_7", np.ones(2, np.float32))
    s = "Default/network-WithLossCell/_backbone-Net"
    r = emit(g, "Reshape", [x], {"shape": (2, 3, 4)}, name=f"{s}/Reshape-op0").outputs[0]
    t = emit(g, "Transpose", [r], {"perm": (0, 2, 1)}, name=f"{s}/Transpose-op0").outputs[0]
    x2 = emit(g, "Reshape", [t], {"shape": (-1, 12)}, name=f"{s}/Reshape-op1").outputs[0]
    mm = emit(g, "MatMul", [x2, w], {"transpose_b": True}, name=f"{s}/fc-Dense/MatMul-op0")
    logits = emit(g, "BiasAdd", [mm.outputs[0], b], {}, name=f"{s}/fc-Dense/BiasAdd-op0")
    ce = emit(g, "SoftmaxCrossEntropyWithLogits", [logits.outputs[0], y], {},
              name="Default/network-WithLossCell/_loss_fn-▲Loss/SoftmaxCrossEntropyWithLogits-op0")
    e = emit(g, "ExpandDims", [sens], {"axis": -1}, name="Gradients/▲/ExpandDims-op0")
    d = emit(g, "Mul", [ce.outputs[1], e.outputs[0]], {}, name="Gradients/▲/Mul-op0")
    d2 = emit(g, "AddN", [d.outputs[0], d.outputs[0]], {}, name="Gradients/▲/AddN-op0")
    gw = emit(g, "MatMul", [d2.outputs[0], x2], {"transpose_a": True},
              name="Gradients/Default/Grad_MatMul/MatMul-op0")
    emit(g, "ApplyMomentum", [w, acc, lr, gw.outputs[0], mom], {},
         name="Default/optimizer-Momentum/ApplyMomentum-op0")
    g.outputs = [ce.outputs[0]]
    g.attrs["training"] = True
    return g


def _attr(node_or_prim, name):
    return next(a for a in node_or_prim.attribute if a.name == name)


def test_written_model_fields(tmp_path):
    needed = {"Reshape", "Transpose", "SoftmaxCrossEntropyWithLogits", "ExpandDims", "AddN",
              "ApplyMomentum", "Mul"} - set(OPS)
    if needed:
        pytest.skip(f"opset lacks {sorted(needed)}")
    g = small_train_graph()
    write(g, tmp_path / "m.mindir")
    m = load_model(tmp_path / "m.mindir")
    assert (m.ir_version, m.producer_name, m.model_version, m.mind_ir_version,
            m.little_endian) == ("1.1", "MindSpore", "2.10.0", 3, True)
    assert not m.functions and m.graph.name == g.name
    pre = g.name + ":"
    assert [vi.name for vi in m.graph.input] == [pre + "inputs0", pre + "inputs1"]
    assert list(m.graph.input[0].tensor[0].dims) == [2, 12]
    assert m.graph.input[1].tensor[0].data_type == pb.TensorProto.FLOAT
    training = _attr(m.graph, "training")
    assert training.type == A.BOOL and training.i == 1
    # Parameters.
    params = {p.ref_key: p for p in m.graph.parameter}
    assert list(params) == ["fc.weight", "fc.bias", "moments.fc.weight", "learning_rate",
                            "momentum"]
    w = params["fc.weight"]
    assert w.name == pre + "fc.weight" and list(w.dims) == [5, 12]
    assert w.data_type == 1 and w.raw_data == g.value("fc.weight").data.tobytes()
    assert list(params["learning_rate"].dims) == [] and len(params["learning_rate"].raw_data) == 4
    # Primitives and REF:: names.
    prims = {p.name: p for p in m.primitives}
    nodes = {n.output[0]: n for n in m.graph.node}
    for n in m.graph.node:
        assert n.op_type == "Constant" or n.op_type[5:] in prims, n.op_type
        if n.op_type != "Constant":
            assert n.op_type.startswith("REF::") and n.name == n.output[0]
            assert n.name.startswith(pre) and _attr(n, "shape")
    by_op = {}
    for n in m.graph.node:
        if n.op_type != "Constant":
            by_op.setdefault(prims[n.op_type[5:]].op_type, []).append(n)
    prim_of = lambda n: prims[n.op_type[5:]]
    fwd = by_op["MatMul"][0]
    assert prim_of(fwd).prim_type == pb.PrimitiveProto.PRIMITIVE_FUNCTION
    assert fwd.domain == "Default/network-WithLossCell/_backbone-Net/fc-Dense/MatMul-op0"
    ta, tb = (_attr(nodes[i], "value") for i in fwd.input[2:4])
    assert (ta.type, ta.i, tb.type, tb.i) == (A.BOOL, 0, A.BOOL, 1)
    load = nodes[fwd.input[1]]
    assert prim_of(load).op_type == "Load" and load.input[0] == pre + "fc.weight"
    assert _attr(nodes[load.input[1]], "value").type == A.UMONAD
    bias = by_op["BiasAdd"][0]
    fmt = _attr(nodes[bias.input[2]], "value")
    assert (fmt.type, fmt.i) == (A.INT64, 0) and not fmt.HasField("f")
    shape = _attr(nodes[by_op["Reshape"][1].input[1]], "value")
    assert shape.type == A.TUPLE and [(v.type, list(v.ints)) for v in shape.values] == \
        [(A.INT64, [-1]), (A.INT64, [12])]
    assert not any(v.HasField("i") for v in shape.values)
    axis = _attr(nodes[by_op["ExpandDims"][0].input[1]], "value")
    assert (axis.type, axis.i) == (A.INT64, -1)
    sens = nodes[by_op["ExpandDims"][0].input[0]]
    assert sens.name == "▸Parameter_7" and _attr(sens, "value").type == A.TENSORS
    assert _attr(sens, "value").tensors[0].raw_data == np.ones(2, np.float32).tobytes()
    # Dense CE: a tuple abstract, unpacked by TupleGetItem.
    ce = by_op["SoftmaxCrossEntropyWithLogits"][0]
    assert prim_of(ce).prim_type == pb.PrimitiveProto.PRIMITIVE
    assert _attr(ce, "shape").type == A.TUPLE and len(_attr(ce, "shape").values) == 2
    items = [n for n in by_op["TupleGetItem"] if n.input[0] == ce.name]
    assert sorted(_attr(nodes[n.input[1]], "value").i for n in items) == [0, 1]
    assert nodes[by_op["AddN"][0].input[0]].op_type.startswith("REF::MakeTuple")
    # The optimizer: classic attributes, parameters directly, U last, the file's abstract.
    mo = by_op["ApplyMomentum"][0]
    p = prim_of(mo)
    assert p.prim_type == pb.PrimitiveProto.PRIMITIVE and p.instance_name == "opt"
    pattrs = {a.name: a for a in p.attribute}
    assert (pattrs["use_nesterov"].type, pattrs["use_nesterov"].i) == (A.BOOL, 0)
    assert (pattrs["gradient_scale"].type, pattrs["gradient_scale"].f) == (A.FLOAT, 1.0)
    assert pattrs["side_effect_mem"].i == 1
    assert list(mo.input[:3]) == [pre + "fc.weight", pre + "moments.fc.weight",
                                  pre + "learning_rate"]
    assert mo.input[4] == pre + "momentum"
    assert prim_of(nodes[mo.input[5]]).op_type == "UpdateState"
    assert list(_attr(mo, "shape").tensors[0].dims) == [5, 12]
    # The output: the loss through Depend nodes.
    out = nodes[m.graph.output[0].name]
    assert prim_of(out).op_type == "Depend"
    while prim_of(out).op_type == "Depend":
        out = nodes[out.input[0]]
    assert prim_of(out).op_type == "TupleGetItem" and out.input[0] == ce.name
    # Reading strips the plumbing and gives the same graph back.
    assert signature(read(tmp_path / "m.mindir")) == signature(g)


def test_written_file_interprets_the_same(tmp_path):
    needed = {"Reshape", "Transpose", "SoftmaxCrossEntropyWithLogits", "ExpandDims", "AddN",
              "ApplyMomentum", "Mul"} - set(OPS)
    if needed:
        pytest.skip(f"opset lacks {sorted(needed)}")
    write(small_train_graph(), tmp_path / "m.mindir")
    outs1, params1 = run(small_train_graph())
    outs2, params2 = run(read(tmp_path / "m.mindir"))
    np.testing.assert_array_equal(outs1[0], outs2[0])
    np.testing.assert_array_equal(params1["fc.weight"], params2["fc.weight"])
    assert not np.array_equal(params2["fc.weight"], small_train_graph().value("fc.weight").data)


def test_conv_attributes_are_written_in_mindspore_spelling(tmp_path):
    needed = {"Conv2D", "MaxPool"} - set(OPS)
    if needed:
        pytest.skip(f"opset lacks {sorted(needed)}")
    g = Graph("conv")
    x = g.add_input("x", TensorType((1, 3, 8, 8), dtypes.float32))
    w = g.add_const("conv.weight", np.ones((4, 3, 3, 3), np.float32), param=True)
    c = emit(g, "Conv2D", [x, w], {"out_channel": 4, "kernel_size": (3, 3), "pad_mode": "same",
                                   "stride": (2, 2)}, name="Default/conv-Conv2d/Conv2D-op0")
    p = emit(g, "MaxPool", [c.outputs[0]], {"kernel_size": (2, 2), "strides": (2, 2)},
             name="Default/pool/MaxPool-op0")
    g.outputs = [p.outputs[0]]
    m = to_model_proto(g)
    prims = {p.op_type: {a.name: a for a in p.attribute} for p in m.primitives}
    conv = prims["Conv2D"]
    assert [v.ints[0] for v in conv["stride"].values] == [1, 1, 2, 2]
    assert [v.ints[0] for v in conv["kernel_size"].values] == [3, 3]
    assert conv["pad_mode"].s == b"same" and conv["format"].s == b"NCHW"
    assert conv["out_channel"].i == 4 and conv["group"].i == 1 and conv["groups"].i == 1
    assert conv["input_names"].type == A.LIST
    pool = prims["MaxPool"]
    assert [v.ints[0] for v in pool["kernel_size"].values] == [1, 1, 2, 2]
    assert pool["pad_mode"].s == b"VALID"
    write(g, tmp_path / "c.mindir")
    assert signature(read(tmp_path / "c.mindir")) == signature(g)


# -- errors --------------------------------------------------------------------------------
def test_missing_file(tmp_path):
    with pytest.raises(GraphFileError, match=re.escape(str(tmp_path / "nope.mindir"))):
        read(tmp_path / "nope.mindir")


@pytest.mark.parametrize("content", [b"", b"\x00" * 7, b"this is not a model\n",
                                     bytes(range(256)) * 8, b"\xff\xff\xff\xff\xff"])
def test_not_a_mindir(tmp_path, content):
    path = tmp_path / "bad.mindir"
    path.write_bytes(content)
    with pytest.raises(GraphFileError, match="not a MINDIR file") as e:
        read(path)
    assert str(path) in str(e.value)


@needs_corpus
def test_truncated_and_encrypted_files(tmp_path):
    data = (LITE / "tiny_sgd_train.ms210.mindir").read_bytes()
    (tmp_path / "cut.mindir").write_bytes(data[: len(data) // 2])
    with pytest.raises(GraphFileError, match="cut.mindir"):
        read(tmp_path / "cut.mindir")
    rng = np.random.default_rng(3)  # what an AES-GCM encrypted export looks like: noise
    (tmp_path / "enc.mindir").write_bytes(rng.integers(0, 256, len(data), np.uint8).tobytes())
    with pytest.raises(GraphFileError, match="enc.mindir.*not a MINDIR"):
        read(tmp_path / "enc.mindir")


@needs_corpus
def test_functions_and_external_data_are_refused(tmp_path):
    m = load_model(LITE / "tiny_sgd_train.ms210.mindir")
    m.functions.add(name="✓_branch_1")
    (tmp_path / "cf.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(NotSupportedError, match="functions.*control flow"):
        read(tmp_path / "cf.mindir")
    m = load_model(LITE / "tiny_sgd_train.ms210.mindir")
    p = m.graph.parameter[0]
    p.ClearField("raw_data")
    p.external_data.location = "tiny.mindir_variables/data_0"
    (tmp_path / "ext.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(NotSupportedError, match="fc.weight.*external"):
        read(tmp_path / "ext.mindir")


@needs_corpus
def test_unsupported_ops_are_listed_at_once(tmp_path):
    m = load_model(LITE / "tiny_adam_train.ms210.mindir")
    for p in m.primitives:
        if p.op_type == "BiasAdd":
            p.op_type = "FancyBiasAdd"
        elif p.op_type == "Adam":
            p.op_type = "FancyAdam"
    (tmp_path / "u.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(OpNotFoundError) as e:
        read(tmp_path / "u.mindir")
    assert e.value.missing == {
        "FancyBiasAdd": ["Default/network-WithLossCell/_backbone-Tiny/fc-Dense/BiasAdd-op0"],
        "FancyAdam": ["Default/optimizer-Adam/Adam-op0", "Default/optimizer-Adam/Adam-op1"]}
    assert "u.mindir" in str(e.value) and "Adam-op1" in str(e.value)


@needs_corpus
def test_inconsistent_file_names_the_node(tmp_path):
    m = load_model(LITE / "tiny_sgd_train.ms210.mindir")
    node = next(n for n in m.graph.node if n.domain.endswith("BiasAdd-op0"))
    shape = next(a for a in node.attribute if a.name == "shape")
    shape.tensors[0].dims[:] = [7, 7]
    (tmp_path / "s.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(GraphFileError, match="BiasAdd-op0"):
        read(tmp_path / "s.mindir")
    m = load_model(LITE / "tiny_sgd_train.ms210.mindir")
    m.graph.node[-1].input[0] = "nowhere"
    (tmp_path / "d.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(GraphFileError, match="nowhere"):
        read(tmp_path / "d.mindir")


def test_write_refuses_unknown_ops_and_leaves_nothing_behind(tmp_path):
    g = Graph("g")
    x = g.add_input("x", TensorType((2,), dtypes.float32))
    g.add_node("NoSuchOp", [x], {}, [TensorType((2,), dtypes.float32)], name="Default/N-op0")
    g.outputs = [g.nodes[0].outputs[0]]
    (tmp_path / "keep.mindir").write_bytes(b"old")
    with pytest.raises(OpNotFoundError, match="NoSuchOp.*Default/N-op0"):
        write(g, tmp_path / "keep.mindir")
    assert (tmp_path / "keep.mindir").read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["keep.mindir"]


def test_write_into_a_missing_folder(tmp_path):
    g = Graph("g")
    x = g.add_input("x", TensorType((2, 2), dtypes.float32))
    g.outputs = [emit(g, "MatMul", [x, x], {}, name="Default/MatMul-op0").outputs[0]]
    with pytest.raises(ParamError, match="no/such/dir"):
        write(g, tmp_path / "no" / "such" / "dir" / "m.mindir")
    write(g, tmp_path / "m")  # the name is used as given: no suffix added
    assert os.listdir(tmp_path) == ["m"]
    assert isinstance(read(tmp_path / "m"), Graph)


def test_errors_are_todkit_errors(tmp_path):
    for bad in (b"\x0a\x05hello", b"\x3a\x02\x0a\x00"):  # valid protobuf, no usable graph
        (tmp_path / "p.mindir").write_bytes(bad)
        with pytest.raises(TodkitError, match="p.mindir"):
            read(tmp_path / "p.mindir")


# -- hand-made files: older layouts and the ordering guard ---------------------------------
def _hand_model(nodes, refs=True) -> pb.ModelProto:
    """A minimal model: input x float32[2], parameter p float32[2] = [1, 2], then ``nodes``
    as (op, inputs, output, value-or-None); ops by REF:: (2.x) or by plain op_type (older)."""
    m = pb.ModelProto(ir_version="1.1", producer_name="MindSpore", mind_ir_version=3)
    g = m.graph
    g.name = "hand"
    t = g.input.add(name="hand:x").tensor.add(data_type=1)
    t.dims.append(2)
    p = g.parameter.add(name="hand:p", ref_key="p", data_type=1,
                        raw_data=np.array([1, 2], np.float32).tobytes())
    p.dims.append(2)
    for op, ins, out, value in nodes:
        n = g.node.add(name=out, output=[out], input=ins)
        if op == "Constant":
            n.op_type = "Constant"
            mindir.values.encode(n.attribute.add(name="value"), value)
            continue
        if refs:
            n.op_type = f"REF::{op}:{len(m.primitives)}"
            m.primitives.add(name=n.op_type[5:], op_type=op)
        else:
            n.op_type = op
    g.output.add(name=nodes[-1][2])
    return m


def test_plain_op_types_and_missing_domains(tmp_path):
    m = _hand_model([("Constant", [], "U", mindir.values.MONAD),
                     ("Load", ["hand:p", "U"], "hand:l", None),
                     ("Mul", ["hand:x", "hand:l"], "hand:y", None),
                     ("Mul", ["hand:y", "hand:y"], "hand:z", None)], refs=False)
    (tmp_path / "h.mindir").write_bytes(m.SerializeToString())
    g = read(tmp_path / "h.mindir")
    assert [n.name for n in g.nodes] == ["Default/Mul-op0", "Default/Mul-op1"]
    assert g.nodes[0].inputs[1].name == "p" and g.nodes[0].inputs[1].param
    (out,) = interpret(g, {g.inputs[0]: np.array([3, 4], np.float32)})
    np.testing.assert_array_equal(out, [9, 64])


def test_a_load_used_after_the_update_it_predates_is_refused(tmp_path):
    # Mul reads the value p had before Assign wrote it; the IR has no copy of the old value.
    m = _hand_model([("Constant", [], "U", mindir.values.MONAD),
                     ("Load", ["hand:p", "U"], "hand:l", None),
                     ("Assign", ["hand:p", "hand:x", "U"], "hand:a", None),
                     ("Mul", ["hand:l", "hand:x"], "hand:y", None)])
    (tmp_path / "o.mindir").write_bytes(m.SerializeToString())
    with pytest.raises(NotSupportedError, match="o.mindir.*'p'.*Load"):
        read(tmp_path / "o.mindir")
