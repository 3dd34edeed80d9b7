"""Tiny real MindSpore 2.10 train-graph exports, one per op form todkit maps
(tests/test_mindir_forms.py reads them with todkit's MINDIR reader).

Run it with MindSpore's own interpreter, never the project's .venv (MindSpore is not a todkit
dependency):

    /work/venvs/ms/bin/python scripts/make_mindir_forms.py [--out DIR] [NAME ...]

(default DIR: tests/fixtures/mindir_forms; default: every form). Each form is a Dense(4, 4)
followed by the op (or layer, loss, optimizer) under test, wrapped in WithLossCell +
TrainOneStepCell and exported with ``mindspore.export(..., file_format='MINDIR')``, so the file
holds the forward op, the nodes MindSpore's bprop emits for it, and the optimizer. Inputs are
x float32 [2, 4] and a label whose shape and dtype the form chooses.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import mindspore as ms
    from mindspore import Tensor, nn, ops
except ImportError:  # pragma: no cover - this script runs only in MindSpore's venv
    sys.exit("make_mindir_forms.py needs MindSpore 2.10: run it with /work/venvs/ms/bin/python")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "mindir_forms"

X = np.linspace(-1, 1, 8, dtype=np.float32).reshape(2, 4)
Y = np.linspace(0.1, 0.9, 8, dtype=np.float32).reshape(2, 4)
LABELS = np.array([1, 3], np.int32)


class Head(nn.Cell):
    """Dense(4, 4), then ``body`` (a function of the Dense output)."""

    def __init__(self, body):
        super().__init__()
        self.fc = nn.Dense(4, 4)
        self.body = body

    def construct(self, x):
        return self.body(self.fc(x))




FORMS = {}


def form(label=Y, loss=None, optimizer=None):
    """Register a form: a Cell class whose construct applies the op(s) under test to the Dense
    output. ``loss`` defaults to L1Loss (Sub, Abs, ReduceMean); ``optimizer`` to SGD."""
    def deco(cls):
        FORMS[cls.__name__] = (cls, label, loss, optimizer)
        return cls
    return deco


class Identity(nn.Cell):
    def construct(self, x):
        return x


# -- forms the previous op engineer could not check --------------------------------------
@form()
class softmax(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.Softmax()

    def construct(self, x):
        return self.op(x)


@form()
class log_softmax(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.LogSoftmax()

    def construct(self, x):
        return self.op(x)


@form()
class squeeze(nn.Cell):
    def __init__(self):
        super().__init__()
        self.expand, self.squeeze = ops.ExpandDims(), ops.Squeeze(1)

    def construct(self, x):
        return self.squeeze(self.expand(x, 1))


@form(label=np.tile(Y, (1, 2)))
class tile(nn.Cell):
    def __init__(self):
        super().__init__()
        self.tile = ops.Tile()

    def construct(self, x):
        return self.tile(x, (1, 2))


@form(label=Y[:, :1])
class reduce_sum(nn.Cell):
    def __init__(self):
        super().__init__()
        self.reduce = ops.ReduceSum(keep_dims=True)

    def construct(self, x):
        return self.reduce(x, 1)


@form()
class sqrt_exp_log(nn.Cell):
    def __init__(self):
        super().__init__()
        self.sqrt, self.exp, self.log = ops.Sqrt(), ops.Exp(), ops.Log()

    def construct(self, x):
        e = self.exp(x)
        return self.sqrt(e) + self.log(e)


@form()
class maximum_minimum(nn.Cell):
    def __init__(self):
        super().__init__()
        self.max, self.min = ops.Maximum(), ops.Minimum()
        self.half = Tensor(np.float32(0.5))

    def construct(self, x):
        return self.max(x, self.half) + self.min(x, x * 2)


@form()
class relu6(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.ReLU6()

    def construct(self, x):
        return self.op(x)


@form()
class hswish(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.HSwish()

    def construct(self, x):
        return self.op(x)


@form()
class hsigmoid(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.HSigmoid()

    def construct(self, x):
        return self.op(x)


@form(loss=nn.BCEWithLogitsLoss())
class bce_with_logits(Identity):
    pass


class SigmoidCE(nn.LossBase):
    def __init__(self):
        super().__init__()
        self.op = ops.SigmoidCrossEntropyWithLogits()

    def construct(self, logits, labels):
        return self.get_loss(self.op(logits, labels))


@form(loss=SigmoidCE())
class sigmoid_cross_entropy(Identity):
    pass


# -- the ops issue 4 adds ---------------------------------------------------------------------
@form(label=np.concatenate([Y, Y[:, :2]], axis=1))
class concat(nn.Cell):
    def __init__(self):
        super().__init__()
        self.concat = ops.Concat(1)

    def construct(self, x):
        return self.concat((x, x[:, 1:3]))


@form()
class cast(nn.Cell):
    def __init__(self):
        super().__init__()
        self.cast = ops.Cast()

    def construct(self, x):
        return self.cast(self.cast(x, ms.float16), ms.float32)


@form()
class pow(nn.Cell):
    def __init__(self):
        super().__init__()
        self.pow, self.abs = ops.Pow(), ops.Abs()

    def construct(self, x):
        return self.pow(x, 2.0) + self.pow(self.abs(x) + 1, x)


@form()
class gelu(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.GELU(approximate=False)

    def construct(self, x):
        return self.op(x)


@form()
class gelu_tanh(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.GELU()  # approximate=True is nn.GELU's default

    def construct(self, x):
        return self.op(x)


@form(label=Y.reshape(2, 4, 1, 1))
class adaptive_avg_pool(nn.Cell):
    def __init__(self):
        super().__init__()
        self.reshape, self.pool = ops.Reshape(), nn.AdaptiveAvgPool2d(1)

    def construct(self, x):
        return self.pool(self.reshape(x, (2, 4, 1, 1)) * 1.0 + self.reshape(x, (2, 4, 1, 1)))


@form(loss=nn.MSELoss())
class mse_loss(Identity):
    pass


@form(loss=nn.L1Loss())
class l1_loss(Identity):
    pass


@form(loss=nn.SmoothL1Loss())
class smooth_l1_loss(Identity):
    pass


@form(loss=nn.BCELoss(reduction="mean"))
class bce_loss(nn.Cell):
    def __init__(self):
        super().__init__()
        self.op = nn.Sigmoid()

    def construct(self, x):
        return self.op(x)


@form(label=LABELS, loss=nn.NLLLoss())
class nll_loss(log_softmax):
    pass


@form(label=LABELS, loss=nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="none"))
class sparse_ce_none(Identity):
    pass


@form(label=LABELS, loss=nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="sum"))
class sparse_ce_sum(Identity):
    pass


class NLLLossPrimitive(nn.Cell):
    """The ``ops.NLLLoss`` primitive itself (nn.NLLLoss composes GatherD arithmetic instead)."""

    def __init__(self):
        super().__init__()
        self.op = ops.NLLLoss(reduction="mean")
        self.weight = Tensor(np.ones(4, np.float32))

    def construct(self, logits, labels):
        return self.op(logits, labels, self.weight)[0]


@form(label=LABELS, loss=NLLLossPrimitive())
class nll_loss_primitive(log_softmax):
    pass


class OneHotL1(nn.Cell):
    def __init__(self):
        super().__init__()
        self.onehot = ops.OneHot()
        self.on, self.off = Tensor(np.float32(1)), Tensor(np.float32(0))
        self.l1 = nn.L1Loss()

    def construct(self, logits, labels):
        return self.l1(logits, self.onehot(labels, 4, self.on, self.off))


@form(label=LABELS, loss=OneHotL1())
class one_hot(Identity):
    pass


@form(optimizer=lambda params: nn.AdamWeightDecay(params, learning_rate=0.01,
                                                   weight_decay=0.01))
class adam_weight_decay(Identity):
    pass


# -- 2.10's ops.split, ops.matmul on 3-D and ops.BatchMatMul ----------------------------------
@form()
class split(nn.Cell):
    """Split(x, axis, output_num) forward, Concat of the pieces' gradients backward."""

    def __init__(self):
        super().__init__()
        self.concat = ops.Concat(1)

    def construct(self, x):
        a, b = ops.split(x, 2, axis=1)
        return self.concat((a * b, a))


@form()
class matmul_ext(nn.Cell):
    """ops.matmul of two (2, 2, 2) tensors: MatMulExt forward and backward."""

    def construct(self, x):
        h = x.reshape(2, 2, 2)
        return ops.matmul(h, h).reshape(2, 4)


@form()
class batch_matmul(nn.Cell):
    def __init__(self):
        super().__init__()
        self.bmm = ops.BatchMatMul(transpose_b=True)

    def construct(self, x):
        h = x.reshape(2, 2, 2)
        return self.bmm(h, h).reshape(2, 4)


# -- nn.PReLU, nn.Mish, nn.Dropout2d ----------------------------------------------------------
@form()
class prelu(nn.Cell):
    """nn.PReLU() (one shared weight): PReLU(x, w) forward, PReLUGrad(dy, x, w) backward."""

    def __init__(self):
        super().__init__()
        self.op = nn.PReLU()

    def construct(self, x):
        return self.op(x)


@form()
class mish(nn.Cell):
    """nn.Mish: Mish(x) forward; Softplus, Tanh, TanhGrad, SoftplusGrad backward."""

    def __init__(self):
        super().__init__()
        self.op = nn.Mish()

    def construct(self, x):
        return self.op(x)


@form()
class dropout2d(nn.Cell):
    """nn.Dropout2d(p=0.5) on the Dense output seen as (2, 2, 1, 2): Dropout2D{keep_prob}
    forward, Cast(mask) * Muls(dout, 2) backward."""

    def __init__(self):
        super().__init__()
        self.op = nn.Dropout2d(p=0.5)

    def construct(self, x):
        return self.op(x.reshape(2, 2, 1, 2)).reshape(2, 4)


def export(name: str, out: Path) -> None:
    ms.set_seed(0)
    cls, label, loss, optimizer = FORMS[name]
    net = Head(cls())
    loss_net = nn.WithLossCell(net, loss if loss is not None else nn.L1Loss())
    params = net.trainable_params()
    opt = optimizer(params) if optimizer else nn.SGD(params, learning_rate=0.1)
    train = nn.TrainOneStepCell(loss_net, opt)
    train.set_train(True)
    ms.export(train, Tensor(X), Tensor(label), file_name=str(out / name), file_format="MINDIR")
    print(f"{name}: {out / name}.mindir")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("names", nargs="*", help=f"forms (default all: {', '.join(FORMS)})")
    args = parser.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    args.out.mkdir(parents=True, exist_ok=True)
    for name in args.names or FORMS:
        export(name, args.out)


if __name__ == "__main__":
    main()
