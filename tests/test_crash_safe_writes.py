"""Crash-safe writes (issue 7 item 5): a writer killed with SIGKILL at random moments never
leaves a damaged file, and its temporaries do not pile up.

A forked process rewrites one file in a loop (version 1, 2, ... of a ~2 MB model whose big
weight holds the version number in every element); the test kills it at a random moment, then
checks that the file still loads and is one whole version, and that at most one temporary (the
killed writer's) is left. The next writer removes it, so temporaries never accumulate.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
import random
import signal
import time

import numpy as np
import pytest

from todkit.core import dtypes
from todkit.core.errors import ParamError
from todkit.core.fileio import atomic_write, remove_stale_temps
from todkit.formats import mindir, ms
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit

ROUNDS = 12
BIG = (512, 1024)  # 2 MB of float32: a write takes long enough to be caught in the middle


def _graph(version: int) -> Graph:
    g = Graph("crash")
    x = g.add_input("x", TensorType((2, BIG[1]), dtypes.float32))
    w = g.add_const("big.weight", np.full(BIG, version, np.float32), param=True)
    g.outputs = [emit(g, "MatMul", [x, w], {"transpose_b": True}, name="Default/MatMul-op0")
                 .outputs[0]]
    return g


def _version_in(graph: Graph) -> int:
    w = next(c for c in graph.consts if c.name == "big.weight").data
    assert w.shape == BIG and (w == w.flat[0]).all(), "a mix of two versions"
    return int(w.flat[0])


def _write_mindir(path, version):
    mindir.write(_graph(version), path)


def _write_ms(path, version):
    ms.write(_graph(version), path)


def _read_mindir(path):
    return _version_in(mindir.read(path))


def _read_ms(path):
    return _version_in(ms.read(path).graph)


def _export_loop(path, start):
    """Lite's Model.export (and so CkptSaver) of a loaded model whose weights change."""
    from todkit.lite import Model

    model = Model()
    model.build_from_file(path)
    weight = next(c for c in model.session.graph.consts if c.name == "big.weight")
    for version in itertools.count(start):
        weight.data[...] = version
        model.export(path)


def _converter_loop(path, start):
    """converter_lite's output: the .ms written from a MINDIR, again and again."""
    from todkit.converter.convert import convert

    src = os.path.join(os.path.dirname(path), "src", "model.mindir")
    for _ in itertools.count():
        convert(src, path, True)


def _loop(write):
    def run(path, start):
        for version in itertools.count(start):
            write(path, version)
    return run


KINDS = {
    "mindir_write": ("model.mindir", _write_mindir, _loop(_write_mindir), _read_mindir),
    "ms_write": ("model.ms", _write_ms, _loop(_write_ms), _read_ms),
    "lite_export": ("model.ms", _write_ms, _export_loop, _read_ms),
    "converter": ("model.ms", _write_ms, _converter_loop, _read_ms),
}


def _temps(folder) -> list[str]:
    return [n for n in os.listdir(folder) if n.endswith(".tmp")]


@pytest.mark.parametrize("kind", list(KINDS))
def test_sigkill_mid_write_leaves_the_previous_file_whole(kind, tmp_path):
    name, first_write, loop, read = KINDS[kind]
    path = str(tmp_path / name)
    first_write(path, 0)
    if kind == "converter":
        os.mkdir(tmp_path / "src")
        _write_mindir(tmp_path / "src" / "model.mindir", 7)
    ctx = multiprocessing.get_context("fork")
    rng = random.Random(kind)
    last, in_flight = read(path), 0
    # At least ROUNDS kills; on a loaded machine go on (up to 5x) until a kill has landed
    # mid-write and a write has completed, so the test's premise holds, not its luck.
    for round_ in range(5 * ROUNDS):
        if round_ >= ROUNDS and in_flight >= 1 and (kind == "converter" or last > 0):
            break
        p = ctx.Process(target=loop, args=(path, last + 1), daemon=True)
        p.start()
        time.sleep(rng.uniform(0.0, 0.25))
        os.kill(p.pid, signal.SIGKILL)
        p.join()
        assert p.exitcode == -signal.SIGKILL, "the writer died on its own"
        version = read(path)  # loads, and is one whole version
        if kind != "converter":
            assert version >= last, "the file went back to an older version"
        temps = _temps(tmp_path)
        assert len(temps) <= 1, temps
        in_flight += len(temps)
        last = version
    # the kills did land in the middle of writes, and writes did complete between them
    assert in_flight >= 1
    if kind != "converter":
        assert last > 0
    remove_stale_temps(str(tmp_path), name)
    assert _temps(tmp_path) == []


def test_failed_write_keeps_the_old_file_and_no_temp(tmp_path):
    path = tmp_path / "model.bin"
    atomic_write(path, b"old")

    def explode(f):
        f.write(b"half")
        raise KeyboardInterrupt  # Ctrl-C in the middle of a write

    with pytest.raises(KeyboardInterrupt):
        atomic_write(path, explode)
    assert path.read_bytes() == b"old" and os.listdir(tmp_path) == ["model.bin"]
    with pytest.raises(ParamError, match="no_dir"):
        atomic_write(tmp_path / "no_dir" / "m.bin", b"x")
    atomic_write(path, lambda f: f.write(b"new"))
    assert path.read_bytes() == b"new" and oct(path.stat().st_mode & 0o777) == oct(0o644)


def test_only_temps_of_dead_writers_of_that_name_are_removed(tmp_path):
    dead = 2**22 + 12345  # above the default pid_max: no such process
    ours = f".m.ms.{os.getpid()}.abcd1234.tmp"
    for n in (f".m.ms.{dead}.abcd1234.tmp", ours, f".m.ms.5.{dead}.abcd1234.tmp",
              f".other.{dead}.abcd1234.tmp", "m.ms"):
        (tmp_path / n).write_bytes(b"")
    assert remove_stale_temps(str(tmp_path), "m.ms") == [f".m.ms.{dead}.abcd1234.tmp"]
    assert len(os.listdir(tmp_path)) == 4
