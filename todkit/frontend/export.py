"""``export(net, *inputs, file_name, file_format='MINDIR')`` as MindSpore's
``mindspore.train.serialization.export``: a TrainOneStepCell exports its whole train graph
(inputs ``inputs0``, ``inputs1``; output the loss; ``training`` True), any other cell an
inference graph (inputs named as ``construct``'s arguments; ``training`` False)."""

from __future__ import annotations

import os

from todkit.core.errors import ParamError
from todkit.frontend.cell import Cell
from todkit.frontend.graphs import build_graph


def export_graph(net: Cell, *inputs):
    """The IR graph ``export`` writes, without writing it."""
    if not isinstance(net, Cell):
        raise TypeError(f"export takes a Cell, got {type(net).__name__}")
    if not inputs:
        raise ValueError("export needs example inputs (their shapes and dtypes are fixed in "
                         "the graph)")
    graph, _ = build_graph(net, inputs)
    return graph


def mindir_path(file_name: str) -> str:
    """MindSpore appends '.mindir' unless the name already ends with it."""
    return file_name if file_name.endswith(".mindir") else file_name + ".mindir"


def export(net, *inputs, file_name, file_format="MINDIR", **kwargs):
    """Trace ``net`` on ``inputs`` and write ``<file_name>.mindir``; returns the path."""
    if file_format != "MINDIR":
        raise ParamError(f"file_format {file_format!r} is not supported; todkit exports "
                         "'MINDIR' only (AIR and ONNX are not supported)")
    if kwargs:
        raise TypeError(f"export got unsupported arguments {sorted(kwargs)}")
    graph = export_graph(net, *inputs)
    from todkit.formats import mindir  # imported late: the front end works without the codec

    path = mindir_path(os.fspath(file_name))
    mindir.write(graph, path)
    return path
