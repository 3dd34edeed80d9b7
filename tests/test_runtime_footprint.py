"""What loading and training a model costs in resident memory beyond its own arrays.

On a small device every shared library counts, and so does holding a model file while its
weights are copied out of it: ``numpy.random`` (2.2 MB) is only for
models with random ops, and OpenSSL's libcrypto (3.6 MB, pulled in by ``hashlib``) for
nothing the runtime does. A fresh interpreter shows what a user's process imports.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

import numpy as np
import pytest

from tests.test_runtime_graphs import train_graph
from todkit.core import dtypes
from todkit.core.digest import digest16
from todkit.core.errors import GraphFileError
from todkit.formats import ms
from todkit.ir.graph import Graph, TensorType
from todkit.lite.model import read_ms_file
from todkit.opset import emit
from todkit.opset.runctx import RunContext
from todkit.runtime.export import write_ms

TRAIN_AND_LIST_MODULES = """
import sys
import numpy as np
from todkit import lite
model = lite.Model()
model.build_from_file(sys.argv[1], lite.ModelType.MINDIR_LITE, lite.Context(1),
                      train_cfg=lite.TrainCfg())
data, label = model.get_inputs()
data.set_data_from_numpy(np.ones(data.shape, np.float32))
label.set_data_from_numpy(np.zeros(label.shape, np.int32))
model.set_train_mode(True)
for _ in range(3):
    model.run_step()
model.predict(model.get_inputs())
print(" ".join(sorted(sys.modules)))
"""


def test_training_a_model_without_random_ops_loads_neither_numpy_random_nor_openssl(tmp_path):
    path = tmp_path / "tiny.ms"
    write_ms(train_graph("adam"), path)
    out = subprocess.run([sys.executable, "-c", TRAIN_AND_LIST_MODULES, str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "todkit.lite" in out
    assert "numpy.random" not in out
    assert "_hashlib" not in out


def test_rng_is_made_on_first_use_from_the_seed():
    rt = RunContext(seed=7)
    first = rt.rng.random(4)
    again = RunContext(seed=7).rng.random(4)
    assert (first == again).all()
    assert rt.rng is rt.rng


def test_digest16_is_blake2b_128():
    for data in (b"", b"abc", bytes(range(256)) * 9):
        assert digest16(data) == hashlib.blake2b(data, digest_size=16).digest()


def big_dense_graph(rows: int, cols: int) -> Graph:
    """An inference graph whose weights are ``rows * cols`` float32 values."""
    g = Graph("big_dense")
    x = g.add_input("inputs0", TensorType((1, cols), dtypes.float32))
    w = g.add_const("fc.weight", np.arange(rows * cols, dtype=np.float32).reshape(rows, cols)
                    / (rows * cols), param=True)
    g.outputs = [emit(g, "MatMul", [x, w], {"transpose_b": True}, name="fc/MatMul-op0").outputs[0]]
    return g


LOAD_AND_MEASURE = """
import resource, sys
from todkit.lite.model import read_ms_file
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
model = read_ms_file(sys.argv[1], [])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((after - before) * 1024)
"""


def test_loading_peaks_at_the_weights_not_the_file_plus_the_weights(tmp_path):
    # 32 MB of weights: reading the file into memory and copying them out peaks at 64 MB.
    path = tmp_path / "big.ms"
    weights = 4096 * 2048 * 4
    write_ms(big_dense_graph(4096, 2048), path)
    grew = int(subprocess.run([sys.executable, "-c", LOAD_AND_MEASURE, str(path)],
                              capture_output=True, text=True, check=True).stdout)
    assert grew < 1.35 * weights, f"loading grew the peak by {grew / weights:.2f}x the weights"


def test_a_mapped_file_reads_as_its_bytes(tmp_path):
    path = tmp_path / "tiny.ms"
    write_ms(train_graph("momentum"), path)
    mapped = ms.read(ms.map_file(path), where=str(path))
    plain = ms.read(path.read_bytes())
    consts = {v.name: v.data for v in plain.graph.values() if v.is_const}
    got = {v.name: v.data for v in mapped.graph.values() if v.is_const}
    assert got.keys() == consts.keys()
    for name, data in consts.items():
        assert got[name].dtype == data.dtype and got[name].flags.writeable
        np.testing.assert_array_equal(got[name], data)
    assert [n.op for n in mapped.graph.nodes] == [n.op for n in plain.graph.nodes]


def test_an_empty_file_is_refused_with_its_name(tmp_path):
    path = tmp_path / "empty.ms"
    path.write_bytes(b"")
    with pytest.raises(GraphFileError, match="empty.ms"):
        read_ms_file(path)


def test_a_file_that_cannot_be_mapped_is_read(tmp_path, monkeypatch):
    from todkit.formats.ms.read import MappedFile

    def refuse(cls, f):
        raise OSError("mmap: not supported here")

    monkeypatch.setattr(MappedFile, "__new__", refuse)
    path = tmp_path / "tiny.ms"
    write_ms(train_graph("momentum"), path)
    with open(path, "rb") as f:
        f.read()  # the digest leaves the file at its end
        raw = ms.map_file(f)
    assert raw == path.read_bytes()
    assert [n.op for n in read_ms_file(path).graph.nodes] == [
        n.op for n in ms.read(path.read_bytes()).graph.nodes]


def test_a_file_cut_short_while_loading_names_the_file_and_the_tensor(tmp_path, monkeypatch):
    from todkit.formats.ms.read import MappedFile

    path = tmp_path / "tiny.ms"
    write_ms(train_graph("momentum"), path)
    mapped = ms.map_file(path)
    with pytest.raises(GraphFileError, match="file ended at byte"):  # pread past the end
        mapped.read_into(np.empty(4, np.float32), len(mapped))
    # (Truncating the mapped file for real would end the test process with SIGBUS as soon
    # as a table page past the new end is read; the weights' own reads are what may fail.)
    real = MappedFile.read_into

    def cut_short(self, arr, offset):
        if offset > 64:
            raise GraphFileError(f"file ended at byte {offset} while reading tensor data")
        real(self, arr, offset)

    monkeypatch.setattr(MappedFile, "read_into", cut_short)
    with pytest.raises(GraphFileError, match=r"tiny\.ms.*tensor \d+ \('.*file ended"):
        ms.read(mapped, where=str(path))
