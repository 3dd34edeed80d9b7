"""MindSpore's ``mindspore.ops``: ``from todkit.ops import operations as P``."""

from todkit.ops import operations

__all__ = ["operations"]
