"""MindSpore's ``mindspore.train``."""

from todkit.train.serialization import export

__all__ = ["export"]
