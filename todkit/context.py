"""MindSpore's ``mindspore.context`` module path (``context.set_context(mode=...)``), so
scripts that import it run unchanged; see ``todkit.frontend.context``."""

from todkit.frontend.context import GRAPH_MODE, PYNATIVE_MODE, get_context, set_context

__all__ = ["GRAPH_MODE", "PYNATIVE_MODE", "get_context", "set_context"]
