"""``mindspore.train.serialization``: ``export`` (trace a cell and write it as MINDIR) and the
checkpoint functions (todkit/train/checkpoint.py)."""

from __future__ import annotations

import os

from todkit.core.errors import ParamError
from todkit.frontend.export import export_graph, mindir_path
from todkit.train.checkpoint import load_checkpoint, load_param_into_net, save_checkpoint


def export(net, *inputs, file_name, file_format="MINDIR", **kwargs):
    """Trace ``net`` on ``inputs`` and write ``<file_name>.mindir`` (the suffix is added unless
    present, as MindSpore does); returns the path written."""
    if file_format != "MINDIR":
        raise ParamError(f"file_format {file_format!r} is not supported; todkit exports "
                         "'MINDIR' only (AIR and ONNX are not supported)")
    if kwargs:
        raise TypeError(f"export got unsupported arguments {sorted(kwargs)}")
    graph = export_graph(net, *inputs)
    from todkit.formats import mindir  # imported late: tracing works without the codec

    path = mindir_path(os.fspath(file_name))
    mindir.write(graph, path)
    return path


__all__ = ["export", "export_graph", "load_checkpoint", "load_param_into_net", "mindir_path",
           "save_checkpoint"]
