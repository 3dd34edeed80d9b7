"""MINDIR -> .ms: read, the passes MindSpore Lite's converter runs, write."""

from __future__ import annotations

import os

from todkit.core.errors import NotSupportedError
from todkit.ir.graph import Graph


def ms_output_path(output_file: str) -> str:
    """The real tool appends ``.ms`` unless the path already ends with it."""
    return output_file if output_file.endswith(".ms") else output_file + ".ms"


def lite_passes(graph: Graph, train_model: bool) -> Graph:
    """The graph rewrites between the MINDIR reader and the .ms writer.

    The reader already dropped MindSpore's side-effect plumbing (Load, UpdateState, Depend,
    MakeTuple, monads) and folded attribute-inputs back into attributes; the .ms codec maps
    op names to the Lite union. With ``train_model`` the real converter keeps every node and
    does not fold constants or fuse train-marked nodes, which is what happens here too.
    """
    from todkit.converter import passes
    from todkit.opset import verify

    if not train_model:
        # Without --trainModel the real converter removes Dropout; an inference graph has
        # nothing else to prune here. A Dropout whose mask something reads (a train graph's
        # DropoutGrad) stays: removing it left that reader without its input.
        dropouts = [n for n in graph.nodes if n.op == "Dropout"
                    and not any(v.users or v in graph.outputs for v in n.outputs[1:])]
        for n in dropouts:
            graph.replace_uses(n.outputs[0], n.inputs[0])
        graph.remove_nodes(dropouts)
        # The NHWC conversion is not train-specific (lite-2.0/lenet_infer.ms: NHWC input,
        # MaxPool-op1_post before the Flatten); its fusions are made by the writer (fusion.py).
        passes.layout_passes(graph)
    else:
        passes.train_passes(graph)
    graph.prune_consts()
    return verify(graph, where="converted graph")


def convert(model_file: str, output_file: str, train_model: bool) -> str:
    """Convert ``model_file`` (MINDIR) to ``<output_file>.ms``; return the path written."""
    from todkit.converter.fusion import converter_fusions
    from todkit.formats import mindir, ms

    if os.path.isdir(model_file):
        raise NotSupportedError(f"{model_file}: is a directory, not a MINDIR file", -1)
    graph = mindir.read(model_file)
    graph = lite_passes(graph, train_model)
    path = ms_output_path(output_file)
    ms.write(graph, path, converter_consts=True, fusions=converter_fusions(graph))
    return path
