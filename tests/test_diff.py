"""``todkit diff``: readable differences of two .ms files, exit 0 when equivalent, 1 when not."""

from __future__ import annotations

import pytest

from tests.shared_paths import LITE, need
from todkit.cli import main as todkit_main
from todkit.formats import ms
from todkit.formats.ms.diff import DiffOptions, diff


@pytest.fixture
def momentum():
    return need(LITE / "tiny_momentum_train.ms")


def test_same_file_is_equivalent(momentum, capsys):
    assert todkit_main(["diff", str(momentum), str(momentum)]) == 0
    assert "are equivalent" in capsys.readouterr().out


def test_round_trip_through_ir_is_equivalent(momentum):
    assert diff(momentum, ms.dumps(ms.read(momentum).graph)) == []


def test_weight_bytes_reported_with_max_abs_diff(momentum, tmp_path, capsys):
    w = ms.read(momentum).graph.value("fc.weight").data.copy()
    w[0, 0] += 0.5
    changed = tmp_path / "changed.ms"
    changed.write_bytes(ms.patch_tensor_data(momentum.read_bytes(), {"fc.weight": w}))
    assert todkit_main(["diff", str(momentum), str(changed)]) == 1
    out = capsys.readouterr().out
    assert "tensor 'fc.weight'" in out and "data differs in 1 of 12 elements" in out
    assert "max abs diff 0.5" in out
    assert todkit_main(["diff", "--ignore-data", str(momentum), str(changed)]) == 0


def test_renamed_node_and_ignore_names(momentum):
    g = ms.read(momentum).graph
    old = g.nodes[0].name
    g.nodes[0].name = "renamed"
    other = ms.dumps(g)
    lines = diff(momentum, other)
    assert f"node {old!r} (MatMulFusion): only in the first file" in lines
    assert "node 'renamed' (MatMulFusion): only in the second file" in lines
    assert diff(momentum, other, DiffOptions(names=False)) == []


def test_attribute_dims_format_and_order(momentum):
    g = ms.read(momentum).graph
    opt = g.node("Default/optimizer-Momentum/ApplyMomentum-op0")
    opt.attrs["use_nesterov"] = True
    g.inputs[0].format = "NCHW"
    g.nodes[2], g.nodes[3] = g.nodes[3], g.nodes[2]  # loss and its gradient: both still valid
    lines = diff(momentum, ms.dumps(g))
    assert f"node {opt.name!r}: attribute use_nesterov False != True" in lines
    assert "tensor 'inputs0' (graph input 0): format NHWC != NCHW" in lines
    assert any(x.startswith("node order differs from position 2") for x in lines)
    quiet = diff(momentum, ms.dumps(g), DiffOptions(formats=False, order=False))
    assert quiet == [f"node {opt.name!r}: attribute use_nesterov False != True"]


def test_different_graphs_list_missing_nodes():
    lines = diff(need(LITE / "tiny_sgd_train.ms"), need(LITE / "tiny_momentum_train.ms"))
    assert "node 'Default/optimizer-SGD/SGD-op0' (SGD): only in the first file" in lines
    assert any("ApplyMomentum-op1' (ApplyMomentum): only in the second file" in x
               for x in lines)


def test_unreadable_file_is_an_error(tmp_path, momentum, capsys):
    bad = tmp_path / "bad.ms"
    bad.write_bytes(b"not a model")
    assert todkit_main(["diff", str(momentum), str(bad)]) == 1
    assert "invalid .ms file" in capsys.readouterr().err
