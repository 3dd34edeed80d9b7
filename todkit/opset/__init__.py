"""The op vocabulary (see registry.py). Importing this package registers every op."""

from todkit.opset.registry import OPS, REQUIRED, OpDef, get_op, op
from todkit.opset.build import emit
from todkit.opset.verify import verify
from todkit.opset.runctx import RunContext
from todkit.opset import nn  # noqa: F401  (registration side effect)

__all__ = ["OPS", "REQUIRED", "OpDef", "RunContext", "emit", "get_op", "op", "verify"]
