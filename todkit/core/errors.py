"""todkit's errors, each carrying MindSpore Lite's status code (include/errorcode.h).

The converter prints ``CONVERT RESULT FAILED:<code> <description>`` from these, and the runtime
raises them with the file, node or tensor they concern in the message.
"""

from __future__ import annotations

# Status codes and their descriptions, as src/errorcode.cc GetErrorInfo spells them.
DESCRIPTIONS = {
    0: "No error occurs.",
    -1: "Common error code.",
    -2: "NULL pointer returned.",
    -3: "Invalid parameter.",
    -4: "No change.",
    -5: "No error but exit.",
    -6: "Fail to create memory.",
    -7: "Fail to support.",
    -8: "Thread pool error.",
    -100: "Failed to check range.",
    -101: "Failed to check input tensor.",
    -102: "Exist executor running.",
    -200: "Failed to verify graph file.",
    -300: "Failed to find operator.",
    -301: "Invalid operator name.",
    -302: "Invalid operator attr.",
    -303: "Failed to execution operator.",
    -400: "Failed to checking tensor format.",
    -500: "Failed to infer shape.",
    -501: "Invalid infer shape before runtime.",
    -600: "Invalid input param by user.",
}

RET_OK = 0
RET_ERROR = -1
RET_PARAM_INVALID = -3
RET_NOT_SUPPORT = -7
RET_INPUT_TENSOR_ERROR = -101
RET_GRAPH_FILE_ERR = -200
RET_NOT_FIND_OP = -300
RET_INVALID_OP_ATTR = -302
RET_OP_EXECUTE_FAILURE = -303
RET_FORMAT_ERR = -400
RET_INFER_ERR = -500
RET_INPUT_PARAM_INVALID = -600


def describe(code: int) -> str:
    return DESCRIPTIONS.get(code, "Unknown error")


class TodkitError(Exception):
    """Base of every error todkit raises on purpose. ``code`` is a MindSpore Lite status."""

    code = RET_ERROR

    def __init__(self, message: str, code: int | None = None):
        super().__init__(message)
        if code is not None:
            self.code = code

    @property
    def description(self) -> str:
        return describe(self.code)


class ParamError(TodkitError):
    """A bad argument from the user (flag, API argument)."""

    code = RET_INPUT_PARAM_INVALID


class GraphFileError(TodkitError):
    """A model file that cannot be read or verified."""

    code = RET_GRAPH_FILE_ERR


class OpNotFoundError(TodkitError):
    """Ops the file uses that todkit does not support; lists all of them at once."""

    code = RET_NOT_FIND_OP

    def __init__(self, message: str, missing: dict[str, list[str]] | None = None):
        super().__init__(message)
        self.missing = missing or {}


class OpAttrError(TodkitError):
    code = RET_INVALID_OP_ATTR


class InferShapeError(TodkitError):
    code = RET_INFER_ERR


class InputTensorError(TodkitError):
    """Wrong shape, dtype or size of data handed to a model tensor."""

    code = RET_INPUT_TENSOR_ERROR


class OpExecuteError(TodkitError):
    """A kernel failed; the message names the node, op and input shapes."""

    code = RET_OP_EXECUTE_FAILURE


class NotSupportedError(TodkitError):
    code = RET_NOT_SUPPORT
