"""``mindspore.common.tensor``."""

from todkit.frontend.tensor import Tensor

__all__ = ["Tensor"]
