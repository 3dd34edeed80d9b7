"""MindSpore's ``mindspore.amp`` entry points that ToD scripts import (the official LeNet
recipe's ``train_wrap`` does). todkit trains in float32, so only level "O0" (and "auto",
which is O0 on a CPU) builds a network; float16 levels are refused by name."""

from __future__ import annotations

from todkit.core.errors import NotSupportedError


class LossScaleManager:
    """Base of the loss-scale managers."""


class FixedLossScaleManager(LossScaleManager):
    """A constant loss scale. With ``drop_overflow_update=False`` (the only form todkit
    supports) the gradients are those of ``loss_scale * loss`` and the optimizer divides by
    its own ``loss_scale``, as in MindSpore."""

    def __init__(self, loss_scale=128.0, drop_overflow_update=True):
        if loss_scale < 1:
            raise ValueError(f"loss_scale must be at least 1, got {loss_scale}")
        self._loss_scale = float(loss_scale)
        self._drop_overflow_update = bool(drop_overflow_update)

    def get_loss_scale(self) -> float:
        return self._loss_scale

    def get_drop_overflow_update(self) -> bool:
        return self._drop_overflow_update


class DynamicLossScaleManager(LossScaleManager):
    def __init__(self, init_loss_scale=2**24, scale_factor=2, scale_window=2000):
        raise NotSupportedError("DynamicLossScaleManager needs float16 overflow detection, "
                                "which todkit (float32 only) does not have")


def build_train_network(network, optimizer, loss_fn=None, level="O0", boost_level="O0",
                        loss_scale_manager=None, **kwargs):
    """``TrainOneStepCell(WithLossCell(network, loss_fn), optimizer)`` for level O0."""
    from todkit.frontend.wrap import TrainOneStepCell, WithLossCell

    if level not in ("O0", "auto"):
        raise NotSupportedError(f"amp level {level!r} trains in float16; todkit supports "
                                "'O0' (float32) only")
    sens = 1.0
    if loss_scale_manager is not None:
        if not isinstance(loss_scale_manager, FixedLossScaleManager) or \
                loss_scale_manager.get_drop_overflow_update():
            raise NotSupportedError("only FixedLossScaleManager(drop_overflow_update=False) "
                                    "is supported")
        sens = loss_scale_manager.get_loss_scale()
    if loss_fn is not None:
        network = WithLossCell(network, loss_fn)
    return TrainOneStepCell(network, optimizer, sens=sens)
