"""MindSpore's ``mindspore.train``."""

from todkit.train.serialization import (
    export,
    load_checkpoint,
    load_param_into_net,
    save_checkpoint,
)

__all__ = ["export", "load_checkpoint", "load_param_into_net", "save_checkpoint"]
