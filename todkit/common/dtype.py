"""``mindspore.common.dtype`` (``mstype.float32`` ...)."""

from todkit.core.dtypes import bool_, float16, float32, float64, int8, int16, int32, int64, uint8

__all__ = ["bool_", "float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8"]
