"""Optimizers as MindSpore 2.x builds them: state as Parameters with MindSpore's names, and
the update written with primitives, so the same ``construct`` runs eagerly or is traced into
the train graph (reference/mindir_in_practice.md, "How the optimizers appear").

State: ``learning_rate`` (float32 scalar), ``global_step`` (int32 [1], incremented every step
by AssignAdd), then per optimizer: Adam ``beta1_power``/``beta2_power`` (float32 scalars, start
at 1, advanced by Mul + Assign before the Adam ops), ``moment1.<p>``/``moment2.<p>``;
Momentum ``momentum``, ``moments.<p>``; SGD ``momentum``, ``accum.<p>``, ``stat.<p>`` (ones).
"""

from __future__ import annotations

import numbers

import numpy as np

from todkit.core import dtypes
from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.parameter import Parameter, ParameterTuple
from todkit.frontend.tensor import Tensor, named_constant


def _scalar_param(value, name: str) -> Parameter:
    return Parameter(Tensor(np.float32(value)), name=name)


class Optimizer(Cell):
    """Base: parameters, learning rate, global step, weight decay and loss scale."""

    def __init__(self, learning_rate, parameters, weight_decay=0.0, loss_scale=1.0):
        super().__init__(auto_prefix=False)
        params = list(parameters)
        if not params:
            raise ValueError(f"{type(self).__name__} got an empty parameter list")
        if any(isinstance(p, dict) for p in params):
            raise NotImplementedError("parameter groups (a list of dicts) are not supported")
        self.parameters = ParameterTuple(params)
        self._parameters = self.parameters
        self.learning_rate = _scalar_param(self._fixed_lr(learning_rate), "learning_rate")
        self.global_step = Parameter(np.zeros([1], np.int32), name="global_step")
        self.global_step_increase_tensor = Tensor(np.ones([1], np.int32))
        if not isinstance(weight_decay, numbers.Real) or weight_decay < 0:
            raise ValueError(f"weight_decay must be a number >= 0, got {weight_decay!r}")
        if not isinstance(loss_scale, numbers.Real) or loss_scale <= 0:
            raise ValueError(f"loss_scale must be a number > 0, got {loss_scale!r}")
        self.weight_decay = float(weight_decay)
        self.loss_scale = float(loss_scale)
        self.reciprocal_scale = 1.0 / self.loss_scale
        self.need_scale = self.loss_scale != 1.0
        # MindSpore's default decay_filter: no decay for BatchNorm's beta and gamma.
        self.decay_flags = tuple("beta" not in p.name and "gamma" not in p.name for p in params)
        self.assignadd = P.AssignAdd()

    @staticmethod
    def _fixed_lr(lr) -> float:
        if isinstance(lr, Tensor):
            if lr.size != 1:
                raise NotImplementedError("a dynamic learning rate (a vector) is not supported")
            lr = lr.item()
        if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
            raise NotImplementedError(f"learning_rate must be a number (dynamic learning rates "
                                      f"are not supported), got {type(lr).__name__}")
        if lr < 0:
            raise ValueError(f"learning_rate must be >= 0, got {lr}")
        return float(lr)

    def get_lr(self):
        """Advance ``global_step`` (MindSpore does it every step, even for a fixed rate)."""
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return self.learning_rate

    def decay_weight_one(self, param, grad, flag: bool):
        """grad + wd * param as MindSpore's ``_apply_decay``: AddN(Mul(param, wd), grad)."""
        if self.weight_decay > 0 and flag:
            return P.AddN()((P.Mul()(param, self.weight_decay), grad))
        return grad

    def scale_grad_one(self, grad):
        return P.Mul()(grad, self.reciprocal_scale) if self.need_scale else grad

    def _check_grads(self, gradients):
        gradients = tuple(gradients)
        if len(gradients) != len(self.parameters):
            raise ValueError(f"{type(self).__name__} got {len(gradients)} gradients for "
                             f"{len(self.parameters)} parameters")
        return gradients


def _check_beta(name, v):
    if not isinstance(v, float) or not 0.0 < v < 1.0:
        raise ValueError(f"{name} must be a float in (0, 1), got {v!r}")


class Adam(Optimizer):
    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-8,
                 use_locking=False, use_nesterov=False, weight_decay=0.0, loss_scale=1.0):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        _check_beta("beta1", beta1)
        _check_beta("beta2", beta2)
        if not isinstance(eps, float) or eps <= 0:
            raise ValueError(f"eps must be a float > 0, got {eps!r}")
        self.beta1 = named_constant(beta1, dtypes.float32, "beta1")
        self.beta2 = named_constant(beta2, dtypes.float32, "beta2")
        self.eps = named_constant(eps, dtypes.float32, "eps")
        self.beta1_power = _scalar_param(1.0, "beta1_power")
        self.beta2_power = _scalar_param(1.0, "beta2_power")
        self.moment1 = self.parameters.clone(prefix="moment1", init="zeros")
        self.moment2 = self.parameters.clone(prefix="moment2", init="zeros")
        self.use_nesterov = bool(use_nesterov)
        self.opt = P.Adam(use_locking, use_nesterov)

    def construct(self, gradients):
        gradients = self._check_grads(gradients)
        lr = self.get_lr()
        # The Adam ops take the already advanced powers b1^t, b2^t.
        beta1_power = self.beta1_power * self.beta1
        self.beta1_power = beta1_power  # an Assign (Cell.__setattr__ on a Parameter)
        beta2_power = self.beta2_power * self.beta2
        self.beta2_power = beta2_power
        for p, m, v, g, flag in zip(self.parameters, self.moment1, self.moment2, gradients,
                                    self.decay_flags):
            g = self.scale_grad_one(self.decay_weight_one(p, g, flag))
            self.opt(p, m, v, beta1_power, beta2_power, lr, self.beta1, self.beta2, self.eps, g)
        return True


class Momentum(Optimizer):
    def __init__(self, params, learning_rate, momentum, weight_decay=0.0, loss_scale=1.0,
                 use_nesterov=False):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        if not isinstance(momentum, numbers.Real) or momentum < 0:
            raise ValueError(f"momentum must be a number >= 0, got {momentum!r}")
        self.momentum = _scalar_param(momentum, "momentum")
        self.moments = self.parameters.clone(prefix="moments", init="zeros")
        self.use_nesterov = bool(use_nesterov)
        self.opt = P.ApplyMomentum(use_nesterov=use_nesterov)

    def construct(self, gradients):
        gradients = self._check_grads(gradients)
        lr = self.get_lr()
        for p, acc, g, flag in zip(self.parameters, self.moments, gradients, self.decay_flags):
            g = self.scale_grad_one(self.decay_weight_one(p, g, flag))
            self.opt(p, acc, lr, g, self.momentum)
        return True


class SGD(Optimizer):
    """Weight decay is the SGD op's own attribute (MindSpore does not add decay nodes)."""

    def __init__(self, params, learning_rate=0.1, momentum=0.0, dampening=0.0,
                 weight_decay=0.0, nesterov=False, loss_scale=1.0):
        super().__init__(learning_rate, params, weight_decay, loss_scale)
        if not isinstance(momentum, numbers.Real) or momentum < 0:
            raise ValueError(f"momentum must be a number >= 0, got {momentum!r}")
        if not isinstance(dampening, numbers.Real) or dampening < 0:
            raise ValueError(f"dampening must be a number >= 0, got {dampening!r}")
        if nesterov and (momentum <= 0 or dampening != 0):
            raise ValueError("nesterov needs momentum > 0 and dampening 0")
        self.opt = P.SGD(dampening, weight_decay, nesterov)
        self.momentum = _scalar_param(momentum, "momentum")
        self.accum = self.parameters.clone(prefix="accum", init="zeros")
        self.stat = self.parameters.clone(prefix="stat", init="ones")

    def construct(self, gradients):
        gradients = self._check_grads(gradients)
        lr = self.get_lr()
        for p, g, acc, st in zip(self.parameters, gradients, self.accum, self.stat):
            self.opt(p, self.scale_grad_one(g), lr, acc, self.momentum, st)
        return True


