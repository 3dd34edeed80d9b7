"""``mindspore.common.initializer``."""

from todkit.frontend.initializer import (
                                         Constant,
                                         HeNormal,
                                         HeUniform,
                                         Initializer,
                                         Normal,
                                         One,
                                         TruncatedNormal,
                                         Uniform,
                                         XavierUniform,
                                         Zero,
                                         initializer,
)

__all__ = ["Constant", "HeNormal", "HeUniform", "Initializer", "Normal", "One",
           "TruncatedNormal", "Uniform", "XavierUniform", "Zero", "initializer"]
