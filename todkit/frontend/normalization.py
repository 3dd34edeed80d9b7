"""``BatchNorm2d`` / ``BatchNorm1d`` as MindSpore 2.x's ``_BatchNorm``, and ``LayerNorm``.

Parameters, in MindSpore's order: ``moving_mean`` and ``moving_variance`` (requires_grad
False; named ``<cell>.moving_mean`` ...), ``gamma`` and ``beta`` (trainable when ``affine``).
``momentum`` is MindSpore's (0.9 keeps 90 % of the moving statistic); the BatchNorm op gets
``1 - momentum``, which is what MindSpore exports (``nn.BatchNorm2d(momentum=0.9)`` shows up as
``momentum 0.1``).

Mode follows ``set_train()`` unless ``use_batch_statistics`` forces it: training uses batch
statistics and updates the moving ones in place (the op mutates them, so an exported train
graph updates them on the device); inference normalizes with the moving statistics. A
backbone left out of the optimizer still runs BatchNorm in training mode if the net was
``set_train()``, exactly as MindSpore's transfer-learning exports do.
"""

from __future__ import annotations

import numbers

from todkit.core import dtypes
from todkit.frontend import primitives as P
from todkit.frontend.cell import Cell
from todkit.frontend.initializer import initializer
from todkit.frontend.parameter import Parameter


class _BatchNorm(Cell):
    _ranks: tuple[int, ...] = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.9, affine=True, gamma_init="ones",
                 beta_init="zeros", moving_mean_init="zeros", moving_var_init="ones",
                 use_batch_statistics=None, data_format="NCHW", dtype=dtypes.float32):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, numbers.Integral) \
                or num_features < 1:
            raise ValueError(f"{name}: num_features must be an int >= 1, got {num_features!r}")
        if not 0 <= momentum <= 1:
            raise ValueError(f"{name}: momentum must be in [0, 1], got {momentum}")
        if data_format != "NCHW":
            raise NotImplementedError(f"{name}: data_format must be 'NCHW' (MindSpore allows "
                                      "NHWC on GPU only)")
        if use_batch_statistics is not None and not isinstance(use_batch_statistics, bool):
            raise ValueError(f"{name}: use_batch_statistics must be a bool or None")
        self.num_features, self.eps = int(num_features), float(eps)
        self.use_batch_statistics = use_batch_statistics
        n = self.num_features
        self.moving_mean = Parameter(initializer(moving_mean_init, n, dtype), name="mean",
                                     requires_grad=False)
        self.moving_variance = Parameter(initializer(moving_var_init, n, dtype),
                                         name="variance", requires_grad=False)
        self.gamma = Parameter(initializer(gamma_init, n, dtype), name="gamma",
                               requires_grad=affine)
        self.beta = Parameter(initializer(beta_init, n, dtype), name="beta", requires_grad=affine)
        self.momentum = 1.0 - momentum
        self.bn_train = P.BatchNorm(is_training=True, epsilon=self.eps, momentum=self.momentum)
        self.bn_infer = P.BatchNorm(is_training=False, epsilon=self.eps)

    def _check_input(self, x):
        if len(x.shape) not in self._ranks:
            raise ValueError(f"{type(self).__name__}: the input must have rank "
                             f"{' or '.join(map(str, self._ranks))}, got shape {list(x.shape)}")
        if x.shape[1] != self.num_features:
            raise ValueError(f"{type(self).__name__}: the input has {x.shape[1]} channels, the "
                             f"layer {self.num_features}")

    def construct(self, x):
        self._check_input(x)
        use_batch = self.training if self.use_batch_statistics is None else \
            self.use_batch_statistics
        params = (self.gamma, self.beta, self.moving_mean, self.moving_variance)
        if use_batch:
            return self.bn_train(x, *params)[0]
        # Inference runs on 4-D input; MindSpore reshapes [N, C] to [N, C, 1, 1] and back.
        shape = tuple(x.shape)
        if len(shape) < 4:
            x = P.Reshape()(x, shape + (1,) * (4 - len(shape)))
        y = self.bn_infer(x, *params)[0]
        return P.Reshape()(y, shape) if len(shape) < 4 else y

    def extend_repr(self) -> str:
        return (f"num_features={self.num_features}, eps={self.eps}, "
                f"momentum={1.0 - self.momentum}")


class BatchNorm2d(_BatchNorm):
    """Input [N, C, H, W]."""

    _ranks = (4,)


class BatchNorm1d(_BatchNorm):
    """Input [N, C] (or [N, C, L])."""

    _ranks = (2, 3)


class LayerNorm(Cell):
    """MindSpore 2.x's ``nn.LayerNorm(normalized_shape, begin_norm_axis=-1,
    begin_params_axis=-1, gamma_init='ones', beta_init='zeros', epsilon=1e-7)``: parameters
    ``gamma`` and ``beta`` of ``normalized_shape``; the LayerNorm primitive's first output."""

    def __init__(self, normalized_shape, begin_norm_axis=-1, begin_params_axis=-1,
                 gamma_init="ones", beta_init="zeros", epsilon=1e-7, dtype=dtypes.float32):
        super().__init__()
        if not isinstance(normalized_shape, (tuple, list)) or not normalized_shape:
            raise TypeError(f"LayerNorm: normalized_shape must be a non-empty tuple or list, "
                            f"got {normalized_shape!r}")
        self.normalized_shape = tuple(int(d) for d in normalized_shape)
        self.begin_norm_axis, self.begin_params_axis = int(begin_norm_axis), \
            int(begin_params_axis)
        self.epsilon = float(epsilon)
        self.gamma = Parameter(initializer(gamma_init, self.normalized_shape, dtype),
                               name="gamma")
        self.beta = Parameter(initializer(beta_init, self.normalized_shape, dtype), name="beta")
        self.layer_norm = P.LayerNorm(self.begin_norm_axis, self.begin_params_axis,
                                      self.epsilon)

    def construct(self, x):
        return self.layer_norm(x, self.gamma, self.beta)[0]

    def extend_repr(self) -> str:
        return (f"normalized_shape={self.normalized_shape}, "
                f"begin_norm_axis={self.begin_norm_axis}, "
                f"begin_params_axis={self.begin_params_axis}")
