"""``mindspore.train.serialization.export``."""

from todkit.frontend.export import export, export_graph, mindir_path

__all__ = ["export", "export_graph", "mindir_path"]
