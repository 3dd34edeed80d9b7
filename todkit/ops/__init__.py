"""MindSpore's ``mindspore.ops``: ``from todkit.ops import operations as P``, and the same
primitives as ``ops.Reshape`` ... (MindSpore 2.x exposes them at both paths)."""

from todkit.ops import operations
from todkit.ops.operations import *  # noqa: F403  (the list lives in operations.__all__)

__all__ = [*operations.__all__, "operations"]
