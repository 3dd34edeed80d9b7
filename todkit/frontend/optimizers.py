"""Optimizers as MindSpore 2.x builds them: state as Parameters with MindSpore's names, and
the update written with primitives, so the same ``construct`` runs eagerly or is traced into
the train graph (reference/mindir_in_practice.md, "How the optimizers appear").

State: ``learning_rate`` (float32 scalar), ``global_step`` (int32 [1], incremented every step
by AssignAdd), then per optimizer: Adam ``beta1_power``/``beta2_power`` (float32 scalars, start
at 1, advanced by Mul + Assign before the Adam ops), ``moment1.<p>``/``moment2.<p>``;
Momentum ``momentum``, ``moments.<p>``; SGD ``momentum``, ``accum.<p>``, ``stat.<p>`` (ones);
AdamWeightDecay ``adam_m.<p>``, ``adam_v.<p>``. A per-step learning rate is a ``[steps]``
``learning_rate`` read with ``Gather`` at ``global_step``.
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


def _lr_param(lr, name: str, where: str) -> tuple[Parameter, bool]:
    """A learning rate as MindSpore keeps it: a number is a float32 scalar Parameter; a list,
    tuple or 1-D Tensor is a per-step table (a [steps] Parameter that ``get_lr`` reads at
    ``global_step`` with Gather, MindSpore's ``_IteratorLearningRate``).
    Returns (param, dynamic)."""
    if isinstance(lr, (list, tuple)):
        lr = Tensor(np.asarray(lr, np.float32))
    if isinstance(lr, Tensor):
        if lr.ndim == 0:
            lr = lr.item()
        elif lr.ndim == 1:
            if lr.size == 0 or (lr.asnumpy() < 0).any():
                raise ValueError(f"{where}: a learning_rate list must be non-empty and >= 0")
            return Parameter(lr.asnumpy().astype(np.float32), name=name), True
        else:
            raise ValueError(f"{where}: learning_rate must be a number or 1-D, got shape "
                             f"{list(lr.shape)}")
    if isinstance(lr, bool) or not isinstance(lr, numbers.Real):
        raise TypeError(f"{where}: learning_rate must be a number, a list or a 1-D Tensor, got "
                        f"{type(lr).__name__} (LearningRateSchedule cells are not supported)")
    if lr < 0:
        raise ValueError(f"{where}: learning_rate must be >= 0, got {lr}")
    return _scalar_param(float(lr), name), False


def _check_weight_decay(wd, where: str) -> float:
    if isinstance(wd, bool) or not isinstance(wd, numbers.Real) or wd < 0:
        raise ValueError(f"{where}: weight_decay must be a number >= 0, got {wd!r}")
    return float(wd)


class Optimizer(Cell):
    """Base: parameters (a list, or MindSpore's parameter groups: dicts with ``params`` and
    optional ``lr`` / ``weight_decay``, plus an optional ``order_params`` dict), learning
    rates, global step, weight decay and loss scale.

    Without groups, weight decay skips parameters whose names contain 'beta' or 'gamma'
    (MindSpore's default filter); with groups, a parameter decays when its group's
    weight_decay is > 0. A group's own ``lr`` is a Parameter ``learning_rate_group_<i>``."""

    def __init__(self, learning_rate, parameters, weight_decay=0.0, loss_scale=1.0):
        super().__init__(auto_prefix=False)
        where = type(self).__name__
        params = list(parameters)
        if not params:
            raise ValueError(f"{where} got an empty parameter list")
        if isinstance(loss_scale, bool) or not isinstance(loss_scale, numbers.Real) or \
                loss_scale <= 0:
            raise ValueError(f"{where}: loss_scale must be a number > 0, got {loss_scale!r}")
        default_wd = _check_weight_decay(weight_decay, where)
        self.learning_rate, self.dynamic_lr = _lr_param(learning_rate, "learning_rate", where)
        self.is_group = isinstance(params[0], dict)
        if self.is_group:
            params, lrs, wds = self._parse_groups(params, default_wd, where)
            self.decay_flags = tuple(wd > 0 for wd in wds)
        else:
            if not all(isinstance(p, Parameter) for p in params):
                raise TypeError(f"{where}: parameters must all be Parameters or all be dicts")
            lrs, wds = [self.learning_rate] * len(params), [default_wd] * len(params)
            self.decay_flags = tuple("beta" not in p.name and "gamma" not in p.name
                                     for p in params)
        self.parameters = ParameterTuple(params)
        self._parameters = self.parameters
        self._param_lrs = lrs
        self.is_group_lr = any(lr is not self.learning_rate for lr in lrs)
        if self.is_group_lr:
            # The per-group rates are optimizer state, listed (once each) as MindSpore does.
            unique = list({id(lr): lr for lr in lrs}.values())
            self.group_lr = ParameterTuple(unique)
        self.weight_decays = tuple(wds)
        self.weight_decay = default_wd
        self.global_step = Parameter(np.zeros([1], np.int32), name="global_step")
        self.global_step_increase_tensor = Tensor(np.ones([1], np.int32))
        self.loss_scale = float(loss_scale)
        self.reciprocal_scale = 1.0 / self.loss_scale
        self.need_scale = self.loss_scale != 1.0
        self.assignadd = P.AssignAdd()

    def _parse_groups(self, groups, default_wd, where):
        params, lrs, wds, names, order = [], [], [], set(), None
        for i, group in enumerate(groups):
            if not isinstance(group, dict):
                raise TypeError(f"{where}: parameter groups must all be dicts")
            unknown = set(group) - {"params", "lr", "weight_decay", "grad_centralization",
                                    "order_params"}
            if unknown:
                raise KeyError(f"{where}: unknown key(s) {sorted(unknown)} in parameter group {i}")
            if "order_params" in group:
                order = list(group["order_params"])
                continue
            if group.get("grad_centralization"):
                raise NotImplementedError(f"{where}: grad_centralization is not supported")
            if "lr" in group:
                lr, dyn = _lr_param(group["lr"], f"learning_rate_group_{i}", where)
                if dyn != self.dynamic_lr:
                    raise ValueError(f"{where}: group {i} mixes a fixed and a per-step "
                                     "learning rate; use the same kind in every group")
            else:
                lr = self.learning_rate
            wd = _check_weight_decay(group.get("weight_decay", default_wd), where)
            for p in group["params"]:
                if not isinstance(p, Parameter):
                    raise TypeError(f"{where}: group {i} holds {type(p).__name__}, not Parameter")
                if p.name in names:
                    raise RuntimeError(f"{where}: parameter {p.name} is in two groups")
                names.add(p.name)
                params.append(p)
                lrs.append(lr)
                wds.append(wd)
        if order is not None:
            by_name = {p.name: k for k, p in enumerate(params)}
            if len(order) != len(params) or any(p.name not in by_name for p in order):
                raise ValueError(f"{where}: order_params must list exactly the grouped parameters")
            idx = [by_name[p.name] for p in order]
            params, lrs, wds = ([seq[k] for k in idx] for seq in (params, lrs, wds))
        return params, lrs, wds

    def _current(self, lr):
        """The rate for this step: the Parameter itself, or its entry at global_step."""
        if not self.dynamic_lr:
            return lr
        return P.Reshape()(P.Gather()(lr, self.global_step, 0), ())

    def get_lrs(self) -> list:
        """One learning rate per parameter for this step, then ``global_step`` += 1
        (MindSpore advances it every step, even for a fixed rate)."""
        current = {}
        for lr in self._param_lrs:
            if id(lr) not in current:
                current[id(lr)] = self._current(lr)
        self.assignadd(self.global_step, self.global_step_increase_tensor)
        return [current[id(lr)] for lr in self._param_lrs]

    def get_lr(self):
        """The learning rate of this step (the first group's, with groups)."""
        return self.get_lrs()[0]

    def decay_weight_one(self, param, grad, index: int):
        """grad + wd * param as MindSpore's ``_apply_decay``: AddN(Mul(param, wd), grad)."""
        wd = self.weight_decays[index]
        if wd > 0 and self.decay_flags[index]:
            return P.AddN()((P.Mul()(param, wd), grad))
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
        lrs = self.get_lrs()
        # The Adam ops take the already advanced powers b1^t, b2^t.
        beta1_power = self.beta1_power * self.beta1
        self.beta1_power = beta1_power  # an Assign (Cell.__setattr__ on a Parameter)
        beta2_power = self.beta2_power * self.beta2
        self.beta2_power = beta2_power
        for i, (p, m, v, g) in enumerate(zip(self.parameters, self.moment1, self.moment2,
                                             gradients)):
            g = self.scale_grad_one(self.decay_weight_one(p, g, i))
            self.opt(p, m, v, beta1_power, beta2_power, lrs[i], self.beta1, self.beta2, self.eps,
                     g)
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
        lrs = self.get_lrs()
        for i, (p, acc, g) in enumerate(zip(self.parameters, self.moments, gradients)):
            g = self.scale_grad_one(self.decay_weight_one(p, g, i))
            self.opt(p, acc, lrs[i], g, self.momentum)
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
        # Weight decay is each SGD op's attribute (per group when groups set their own).
        self.opts = tuple(P.SGD(dampening, wd, nesterov) for wd in self.weight_decays)
        self.momentum = _scalar_param(momentum, "momentum")
        self.accum = self.parameters.clone(prefix="accum", init="zeros")
        self.stat = self.parameters.clone(prefix="stat", init="ones")

    def construct(self, gradients):
        gradients = self._check_grads(gradients)
        lrs = self.get_lrs()
        for i, (p, g, acc, st) in enumerate(zip(self.parameters, gradients, self.accum,
                                                self.stat)):
            self.opts[i](p, self.scale_grad_one(g), lrs[i], acc, self.momentum, st)
        return True




class AdamWeightDecay(Optimizer):
    """MindSpore 2.x's fused form: one ``AdamWeightDecay`` op per parameter,
    (param, adam_m, adam_v, lr, beta1, beta2, eps, decay, grad), decay 0 where the decay
    filter excludes the parameter; beta1/beta2/eps are [1] float32 constants. No bias
    correction and no loss scale (MindSpore's AdamWeightDecay takes none)."""

    def __init__(self, params, learning_rate=1e-3, beta1=0.9, beta2=0.999, eps=1e-6,
                 weight_decay=0.0):
        super().__init__(learning_rate, params, weight_decay)
        _check_beta("beta1", beta1)
        _check_beta("beta2", beta2)
        if not isinstance(eps, float) or eps <= 0:
            raise ValueError(f"eps must be a float > 0, got {eps!r}")
        self.beta1 = named_constant(np.array([beta1], np.float32), dtypes.float32, "beta1")
        self.beta2 = named_constant(np.array([beta2], np.float32), dtypes.float32, "beta2")
        self.eps = named_constant(np.array([eps], np.float32), dtypes.float32, "eps")
        self.moments1 = self.parameters.clone(prefix="adam_m", init="zeros")
        self.moments2 = self.parameters.clone(prefix="adam_v", init="zeros")
        self.fused_opt = P.AdamWeightDecay()

    def construct(self, gradients):
        gradients = self._check_grads(gradients)
        lrs = self.get_lrs()
        for i, (p, m, v, g) in enumerate(zip(self.parameters, self.moments1, self.moments2,
                                             gradients)):
            decay = self.weight_decays[i] if self.decay_flags[i] else 0.0
            self.fused_opt(p, m, v, lrs[i], self.beta1, self.beta2, self.eps,
                           np.float32(decay), g)
        return True
