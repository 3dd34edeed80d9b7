"""Broken and hostile model files (issue 7 items 1, 2 and 4): each gives a typed todkit error
naming the file and what is wrong, within a second, through the readers, ``converter_lite``
and ``lite.Model.build_from_file``, and leaves nothing behind.

The files are in tests/fixtures/hostile/, made by make_hostile.py there (checked below to be
up to date); ``fuzz_*`` files are inputs the fuzz harnesses found.
"""

from __future__ import annotations

import importlib.util
import os
import time
from pathlib import Path

import pytest

from todkit.converter.cli import main as converter_main
from todkit.core.errors import GraphFileError, NotSupportedError, OpNotFoundError, TodkitError
from todkit.formats import mindir, ms
from todkit.lite import Model

HOSTILE = Path(__file__).resolve().parent / "fixtures" / "hostile"
G, NS, OP = GraphFileError, NotSupportedError, OpNotFoundError

# file -> (error class, fragment of the message)
EXPECTED = {
    "ms_empty.ms": (G, "too short"),
    "ms_truncated.ms": (G, "outside the 520-byte buffer"),
    "ms_wrong_identifier.ms": (G, "file identifier is b'MSL1'"),
    "ms_root_offset_out_of_range.ms": (G, "root offset at offset 1000000"),
    "ms_vtable_out_of_range.ms": (G, "(vtable) at offset"),
    "ms_vector_longer_than_file.ms": (G, "allTensors at offset"),
    "ms_huge_declared_data_size.ms": (G, "allTensors[2].data at offset"),
    "ms_huge_string_length.ms": (G, "allTensors[0].name at offset"),
    "ms_unterminated_string.ms": (G, "not null-terminated"),
    "ms_unknown_union_tag.ms": (G, "unknown PrimitiveType union tag 250"),
    "ms_data_size_mismatch.ms": (G, "holds 44 data bytes, but dims [3, 4] of float32 need 48"),
    "ms_negative_dims.ms": (G, "negative dims [2, -4]"),
    "ms_unknown_dtype.ms": (G, "unsupported dataType 9999"),
    "ms_node_input_out_of_range.ms": (G, "inputIndex refers to tensor 999"),
    "ms_node_output_out_of_range.ms": (G, "outputIndex refers to tensor 4242"),
    "ms_graph_input_out_of_range.ms": (G, "MetaGraph.inputIndex refers to tensor 77"),
    "ms_subgraph_node_index_out_of_range.ms": (G, "nodeIndices refers to node 55"),
    "ms_two_producers.ms": (G, "is an output of both"),
    "ms_cycle_reads_later_output.ms": (G, "not a graph input, a constant or an output of an "
                                          "earlier node"),
    "ms_self_loop.ms": (G, "input 0 reads tensor 5 ('Default/ReLU-op2'), which is not"),
    "ms_dangling_edge.ms": (G, "reads tensor 6 ('nobody_makes_this'), which is not"),
    "ms_unsupported_ops.ms": (OP, "unsupported ops: AudioSpectrogram (nodes: "
                                  "Default/fc-Dense/MatMul-op0); "
                                  "Erf (nodes: Default/ReLU-op2)"),
    "ms_wrong_output_shape.ms": (G, "is float32[5, 5] in the file, but the op's shape rule"),
    "ms_shared_offsets_blowup.ms": (G, "invalid .ms file"),
    "mindir_empty.mindir": (G, "the file is empty"),
    "mindir_truncated.mindir": (G, "protobuf DecodeError"),
    "mindir_encrypted.mindir": (G, "encrypted MINDIR files are not supported"),
    "mindir_no_graph.mindir": (G, "no graph in the ModelProto"),
    "mindir_deep_nesting.mindir": (G, "MaxDepth"),
    "mindir_dangling_edge.mindir": (G, "uses 'nowhere', which is not defined before it"),
    "mindir_cycle.mindir": (G, "MatMul-op0' (MatMul) uses 'CNode_5:5', which is not defined"),
    "mindir_self_loop.mindir": (G, "ReLU-op2' (ReLU) uses 'CNode_5:5', which is not defined"),
    "mindir_missing_primitive.mindir": (G, "'ReLU:99', which is not in ModelProto.primitives"),
    "mindir_unsupported_ops.mindir": (OP, "QuantumAdd (nodes: Default/fc-Dense/BiasAdd-op1); "
                                          "FancyActivation (nodes: Default/ReLU-op2)"),
    "mindir_unknown_dtype.mindir": (NS, "tensor data type 77 is not supported"),
    "mindir_raw_data_size_mismatch.mindir": (G, "raw_data holds 40 bytes, float32[3, 4] needs 48"),
    "mindir_huge_dims_wrapping.mindir": (G, "raw_data holds 0 bytes, float32[4294967296, "),
    "mindir_negative_dims.mindir": (G, "dims [-3] are negative"),
    "mindir_huge_input.mindir": (G, "would take 17592186044416 bytes"),
    "mindir_wrong_shape.mindir": (G, "the file gives its outputs as [float32[7, 7]]"),
    "mindir_external_data_parent.mindir": (G, "'../../../../etc/passwd', which leaves the "
                                              "model's folder; refused"),
    "mindir_external_data_absolute.mindir": (G, "'/etc/passwd', which leaves the model's folder"),
    "mindir_external_data_inside.mindir": (NS, "MINDIR external data is not supported"),
    "mindir_external_data_in_constant.mindir": (G, "node 'c' attribute 'value' keeps its data "
                                                   "at '../secret.bin', which leaves"),
    # found by the fuzz harnesses (fuzz/)
    "fuzz_mindir_parameter_name_twice.mindir": (G, "'backbone.block2.bn1.beta' is used twice"),
    "fuzz_mindir_non_utf8_name.mindir": (G, "string field NodeProto.input is not valid UTF-8"),
    "fuzz_ms_biasaddgrad_without_inputs.ms": (G, "input(s), too few for BiasAddGrad"),
}
# Findings in files this suite's owner does not own, reported to their owners; strict, so
# the marker must go when the fix lands.
REPORTED: dict[str, str] = {}


def _cases() -> list:
    return [pytest.param(name, id=name, marks=[pytest.mark.xfail(strict=True,
                                                                 reason=REPORTED[name])]
                         if name in REPORTED else [])
            for name in sorted(EXPECTED)]


def _read(path: Path):
    return (ms.read if path.suffix == ".ms" else mindir.read)(path)


def test_every_fixture_has_an_expectation():
    files = {p.name for p in HOSTILE.iterdir() if p.suffix in (".ms", ".mindir")}
    assert files == set(EXPECTED)


def test_fixtures_are_what_the_script_makes():
    spec = importlib.util.spec_from_file_location("make_hostile", HOSTILE / "make_hostile.py")
    make = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(make)
    stale = [n for n, build in make.FILES.items() if (HOSTILE / n).read_bytes() != build()]
    assert not stale, f"run tests/fixtures/hostile/make_hostile.py: {stale} differ"


@pytest.mark.parametrize("name", _cases())
def test_reader_gives_typed_error_naming_the_file(name):
    path = HOSTILE / name
    cls, fragment = EXPECTED[name]
    start = time.perf_counter()
    with pytest.raises(TodkitError) as e:
        _read(path)
    elapsed = time.perf_counter() - start
    assert type(e.value) is cls, f"{type(e.value).__name__}: {e.value}"
    assert str(path) in str(e.value) and fragment in str(e.value), str(e.value)
    assert len(str(e.value)) < 2000, "an error message should stay readable"
    assert elapsed < 1.0, f"{elapsed:.2f}s"


@pytest.mark.parametrize("kind", ["ms", "mindir"])
def test_directories_and_missing_files(kind, tmp_path):
    folder = tmp_path / f"model.{kind}"
    folder.mkdir()
    reader = ms.read if kind == "ms" else mindir.read
    with pytest.raises(GraphFileError, match=f"{folder}: .*[Ii]s a directory"):
        reader(folder)
    with pytest.raises(GraphFileError, match="nothing_here"):
        reader(tmp_path / f"nothing_here.{kind}")


@pytest.mark.parametrize("name", [n for n in sorted(EXPECTED) if n.endswith(".mindir")])
def test_converter_exits_with_the_error_code_and_leaves_nothing(name, tmp_path, capsys):
    cls, fragment = EXPECTED[name]
    out = tmp_path / "out"
    code = converter_main(["--fmk=MINDIR", "--trainModel=true",
                           f"--modelFile={HOSTILE / name}", f"--outputFile={out}"])
    captured = capsys.readouterr()
    assert code == cls.code
    assert f"CONVERT RESULT FAILED:{cls.code} " in captured.out
    assert fragment in captured.err and "Traceback" not in captured.err + captured.out
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", [c for c in _cases() if c.values[0].endswith(".ms")])
def test_build_from_file_gives_the_error(name, tmp_path):
    cls, fragment = EXPECTED[name]
    before = sorted(os.listdir(HOSTILE))
    with pytest.raises(TodkitError) as e:
        Model().build_from_file(str(HOSTILE / name))
    assert e.value.code == cls.code and fragment in str(e.value), str(e.value)
    assert str(HOSTILE / name) in str(e.value)
    assert sorted(os.listdir(HOSTILE)) == before


def test_converter_on_a_directory(tmp_path, capsys):
    code = converter_main(["--fmk=MINDIR", f"--modelFile={tmp_path}",
                           f"--outputFile={tmp_path / 'out'}"])
    assert code < 0 and "CONVERT RESULT FAILED" in capsys.readouterr().out
    assert os.listdir(tmp_path) == []


def test_todkit_export_with_batchnorm_converts(tmp_path):
    # Found making fuzz seeds: without set_train() BatchNorm exports in inference mode, which
    # only reads its moving statistics; the converter's ordering once took it for an update
    # (OpDef.mutated now says which inputs a node really updates).
    import numpy as np

    import todkit as M
    from todkit.common.parameter import ParameterTuple
    from todkit.converter.convert import convert
    from todkit.train.serialization import export

    class Net(M.nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = M.nn.Conv2d(1, 2, 3, pad_mode="same")
            self.bn = M.nn.BatchNorm2d(2)
            self.flatten = M.nn.Flatten()
            self.fc = M.nn.Dense(2 * 4 * 4, 3)

        def construct(self, x):
            return self.fc(self.flatten(M.nn.ReLU()(self.bn(self.conv(x)))))

    net = Net()
    loss = M.nn.WithLossCell(net, M.nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
    opt = M.nn.Momentum(ParameterTuple(net.trainable_params()), 0.01, 0.9)
    export(M.nn.TrainOneStepCell(loss, opt), M.Tensor(np.ones((2, 1, 4, 4), np.float32)),
           M.Tensor(np.zeros(2, np.int32)), file_name=str(tmp_path / "bn"), file_format="MINDIR")
    path = convert(str(tmp_path / "bn.mindir"), str(tmp_path / "bn"), True)
    Model().build_from_file(path)


def test_a_mindir_given_to_the_runtime_says_to_convert_it(tmp_path):
    from todkit import lite
    from todkit.ir import Graph

    path = tmp_path / "model.mindir"
    mindir.write(Graph("g"), path)
    with pytest.raises(GraphFileError, match=f"{path}.*looks like a MINDIR: convert it first"):
        lite.Model().build_from_file(str(path), lite.ModelType.MINDIR, lite.Context())
