"""``mindspore.common.parameter``."""

from todkit.frontend.parameter import PARAMETER_NAME_DEFAULT, Parameter, ParameterTuple

__all__ = ["PARAMETER_NAME_DEFAULT", "Parameter", "ParameterTuple"]
