"""The op vocabulary (see registry.py). Importing this package registers every op."""

# Op families (imported for their registration side effect).
from todkit.opset import (  # noqa: F401
    activation,
    conv,
    convert,
    dropout,
    extra_layers,
    gather_d,
    group_norm,
    join,
    layer_norm,
    loss,
    loss_elementwise,
    math,
    more_activations,
    nn,
    norm,
    optim,
    pool,
    reduce,
    select,
    shape,
    slicing,
    softmax,
    unary,
)
from todkit.opset.build import emit
from todkit.opset.registry import OPS, REQUIRED, OpDef, get_op, op
from todkit.opset.runctx import RunContext
from todkit.opset.verify import verify

__all__ = ["OPS", "REQUIRED", "OpDef", "RunContext", "emit", "get_op", "op", "verify"]
