"""What ``export`` writes: a TrainOneStepCell gives its whole train graph (inputs ``inputs0``,
``inputs1``; output the loss; ``training`` True), any other cell an inference graph (inputs
named as ``construct``'s arguments; ``training`` False). Writing the file is
``todkit.train.serialization.export``'s job (the front end does not import the codecs)."""

from __future__ import annotations

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
