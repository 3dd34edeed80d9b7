"""LayerNorm and LayerNormGrad as real MindSpore 2.10 computes them, for
tests/test_layer_norm.py (the kernels against MindSpore's numbers, begin_norm_axis and
begin_params_axis other than nn.LayerNorm's -1 included).

Run it with MindSpore's own interpreter, never the project's .venv (MindSpore is not a todkit
dependency):

    /work/venvs/ms/bin/python scripts/make_layer_norm_reference.py [--out FILE]

(default FILE: tests/fixtures/layer_norm/ms210_layer_norm.npz). For each case k (the
``cases`` array: begin_norm_axis, begin_params_axis, epsilon) on a random x [3, 4, 5]:
``k_x, k_gamma, k_beta`` the inputs, ``k_y, k_mean, k_variance`` ops.LayerNorm's outputs,
``k_sens`` a random output gradient and ``k_dx, k_dgamma, k_dbeta`` GradOperation of y
(MindSpore's bprop, its LayerNormGrad) with it; and ``k_gvar, k_gmean`` statistics that are
not x's with ``k_gdx, k_gdgamma, k_gdbeta`` what the LayerNormGrad primitive (epsilon set as
the bprop sets it) gives for them. GRAPH_MODE on CPU.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

try:
    import mindspore as ms
    from mindspore import Tensor, nn, ops
    from mindspore.ops.operations._grad_ops import LayerNormGrad
except ImportError:  # pragma: no cover - this script runs only in MindSpore's venv
    sys.exit("make_layer_norm_reference.py needs MindSpore 2.10: run it with "
             "/work/venvs/ms/bin/python")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "layer_norm" / "ms210_layer_norm.npz"
CASES = [(-1, -1, 1e-7), (1, 1, 1e-5), (2, 1, 1e-3), (1, 2, 1e-3), (1, -1, 1e-7), (0, 0, 1e-5)]
SHAPE = (3, 4, 5)


class Forward(nn.Cell):
    def __init__(self, begin_norm_axis, begin_params_axis, epsilon, first_only=False):
        super().__init__()
        self.ln = ops.LayerNorm(begin_norm_axis, begin_params_axis, epsilon)
        self.first_only = first_only

    def construct(self, x, gamma, beta):
        out = self.ln(x, gamma, beta)
        if self.first_only:
            return out[0]
        return out


class Backward(nn.Cell):
    def __init__(self, net):
        super().__init__()
        self.net = net
        self.grad = ops.GradOperation(get_all=True, sens_param=True)

    def construct(self, x, gamma, beta, sens):
        return self.grad(self.net)(x, gamma, beta, sens)


class Grad(nn.Cell):
    def __init__(self, begin_norm_axis, begin_params_axis, epsilon):
        super().__init__()
        self.op = LayerNormGrad(begin_norm_axis, begin_params_axis)
        self.op.add_prim_attr("epsilon", epsilon)  # as 2.10's bprop passes it

    def construct(self, x, dy, variance, mean, gamma):
        return self.op(x, dy, variance, mean, gamma)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args()
    ms.set_context(mode=ms.GRAPH_MODE, device_target="CPU")
    rng = np.random.default_rng(7)
    out: dict[str, np.ndarray] = {}
    for k, (bna, bpa, eps) in enumerate(CASES):
        x = (rng.standard_normal(SHAPE) * 2 + 1).astype(np.float32)
        pshape = SHAPE[bpa % len(SHAPE):]
        gamma = rng.standard_normal(pshape).astype(np.float32)
        beta = rng.standard_normal(pshape).astype(np.float32)
        sens = rng.standard_normal(SHAPE).astype(np.float32)
        y, mean, var = (t.asnumpy() for t in Forward(bna, bpa, eps)(
            Tensor(x), Tensor(gamma), Tensor(beta)))
        dx, dgamma, dbeta = (t.asnumpy() for t in Backward(Forward(bna, bpa, eps, True))(
            Tensor(x), Tensor(gamma), Tensor(beta), Tensor(sens)))
        gvar = rng.uniform(0.5, 2.0, mean.shape).astype(np.float32)
        gmean = rng.standard_normal(mean.shape).astype(np.float32)
        gdx, gdgamma, gdbeta = (t.asnumpy() for t in Grad(bna, bpa, eps)(
            Tensor(x), Tensor(sens), Tensor(gvar), Tensor(gmean), Tensor(gamma)))
        for name, v in dict(x=x, gamma=gamma, beta=beta, y=y, mean=mean, variance=var,
                            sens=sens, dx=dx, dgamma=dgamma, dbeta=dbeta, gvar=gvar,
                            gmean=gmean, gdx=gdx, gdgamma=gdgamma, gdbeta=gdbeta).items():
            out[f"{k}_{name}"] = v
    args.out.parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, cases=np.array(CASES, np.float64),
             mindspore_version=np.array(ms.__version__), **out)
    print(f"wrote {args.out} ({len(CASES)} cases, MindSpore {ms.__version__})")


if __name__ == "__main__":
    main()
