"""W4's BatchNorm work (issue 6): BatchNorm -> ReLU6 / ReLU as one call
(todkit/runtime/rewrite_norm_act.py) and BatchNorm's one-read training statistics
(``_Blocks.moments`` in todkit/opset/norm.py).

The fused calls must give what the per-node kernels give, bit for bit, in train and eval
steps; a BatchNorm whose output another node also reads must not be fused (its output
would then never be written). Small blocks make every pass cut the tensors into many
blocks, with a ragged last one."""

from __future__ import annotations

import numpy as np
import pytest

from tests.test_runtime_graphs import CNN as NET
from tests.test_runtime_graphs import batch_norm, f32, mean_dense_head
from todkit.core import dtypes
from todkit.ir.graph import Graph, TensorType
from todkit.opset import emit, norm
from todkit.runtime.executor import _run_all
from todkit.runtime.rewrite_norm_act import rewrite_norm_act
from todkit.runtime.session import Session

N, H, W, C, CLASSES = 4, 5, 7, 6, 3


@pytest.fixture(autouse=True)
def small_blocks(monkeypatch):
    """Blocks of 256 bytes: the 4x5x7x6 tensors are cut into ~13 blocks, the last ragged."""
    monkeypatch.setattr(norm, "_BLOCK_BYTES", 256)
    monkeypatch.setattr(norm, "_ROW", 32)
    norm._blocks.cache_clear()
    yield
    norm._blocks.cache_clear()


def net_graph(seed: int = 0) -> Graph:
    """BN -> ReLU6 (fused), BN -> ReLU (fused), BN -> ReLU6 whose BN output an Add also
    reads (not fused), global mean, Dense head trained by SGD."""
    rng = np.random.default_rng(seed)
    g = Graph("bn_act_train")
    x = g.add_input("inputs0", TensorType((N, H, W, C), dtypes.float32))
    y1 = batch_norm(g, x, "bn1", C, rng)
    r1 = emit(g, "ReLU6", [y1], name=f"{NET}/act1-ReLU6/ReLU6-op0").outputs[0]
    y2 = batch_norm(g, r1, "bn2", C, rng)
    r2 = emit(g, "ReLU", [y2], name=f"{NET}/act2-ReLU/ReLU-op0").outputs[0]
    y3 = batch_norm(g, r2, "bn3", C, rng)
    r3 = emit(g, "ReLU6", [y3], name=f"{NET}/act3-ReLU6/ReLU6-op0").outputs[0]
    s = emit(g, "Add", [r3, y3], name=f"{NET}/Add-op0").outputs[0]
    mean_dense_head(g, s, C, N, CLASSES, rng)
    return g


def _fused_steps(ex) -> list[str]:
    return [ex.nodes[i].op + "+" + ex.nodes[i + 1].op for i, e in ex._fused.items()
            if e is not None and e[0].__name__ == "batch_norm_act"]


def _feed(s, step: int):
    rng = np.random.default_rng(100 + step)
    x = f32(rng.normal(3, 2, (N, H, W, C)))  # mean far from 0: the clips cut both ends
    for v, a in zip(s.inputs, (x, rng.integers(0, CLASSES, N).astype(np.int32))):
        s.current.array(v)[...] = a


def _state(s) -> dict[str, np.ndarray]:
    return {v.name: v.data.copy() for v in s.graph.values() if v.is_const}


def test_fuses_only_where_nothing_else_reads_the_batchnorm_output():
    s = Session(net_graph())
    assert _fused_steps(s.train) == ["BatchNorm+ReLU6", "BatchNorm+ReLU"]
    assert _fused_steps(s.eval) == ["BatchNorm+ReLU6", "BatchNorm+ReLU"]
    kernels = [c for c in s.train.calls if c[0] is not _run_all]  # not the guard's checks
    assert len(kernels) == len(s.train.bound) - 2


def test_train_and_eval_steps_equal_the_per_node_kernels():
    fused, plain = Session(net_graph()), Session(net_graph())
    plain.train.set_fused({})  # the per-node kernels, as bound
    plain.eval.set_fused({})
    for step in range(3):
        for s in (fused, plain):
            s.train_mode = True
            _feed(s, step)
            s.run_step()
        a, b = _state(fused), _state(plain)
        for name in b:  # weights and the moving statistics
            np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    outs = []
    for s in (fused, plain):
        s.train_mode = False
        _feed(s, 9)
        s.current.invoke(s.rt)
        outs.append([s.eval.array(v).copy() for v in s.roles.eval_outputs])
    for a, b in zip(*outs):
        np.testing.assert_array_equal(a, b)


def test_traced_loop_runs_the_per_node_kernels_with_the_same_results():
    s = Session(net_graph())
    seen = []
    _feed(s, 0)
    s.train.invoke_traced(s.rt, None, lambda node, ins, outs: seen.append(node.op))
    traced = _state(s)
    assert seen.count("ReLU6") == 2 and seen.count("ReLU") == 1
    t = Session(net_graph())
    _feed(t, 0)
    t.train.invoke(t.rt)
    for name, v in _state(t).items():
        np.testing.assert_array_equal(v, traced[name], err_msg=name)


def _shifted(arena: np.ndarray, a: np.ndarray) -> np.ndarray:
    """A view of ``arena`` shaped as ``a`` and overlapping it, one element off."""
    off = a.__array_interface__["data"][0] - arena.__array_interface__["data"][0]
    off += a.itemsize if off + a.nbytes + a.itemsize <= arena.nbytes else -a.itemsize
    return arena[off:off + a.nbytes].view(a.dtype).reshape(a.shape)


def test_not_fused_when_the_activation_output_partly_overlaps_x():
    """Normalising block by block into an output one element off x would read values
    already overwritten; exactly x (in place) is fine."""
    from todkit.runtime.rewrite import RewriteContext

    s = Session(net_graph())
    ex = s.train
    step = next(i for i, n in enumerate(ex.nodes) if n.op == "BatchNorm")
    kernel, ins, _, attrs = ex.bound[step + 1]
    x = ex.bound[step][1][0]
    ex.bound[step + 1] = (kernel, ins, [x], attrs)
    assert step in rewrite_norm_act(ex, RewriteContext(set(), len(ex.nodes)))
    ex.bound[step + 1] = (kernel, ins, [_shifted(s.arena, x)], attrs)
    assert step not in rewrite_norm_act(ex, RewriteContext(set(), len(ex.nodes)))


@pytest.mark.parametrize("fmt,shape", [("NHWC", (3, 5, 7, 6)), ("NCHW", (3, 6, 5, 7)),
                                       ("NHWC", (50, 6))])
@pytest.mark.parametrize("offset", [0.0, 1e4])
def test_one_read_statistics_match_float64_two_pass(fmt, shape, offset):
    """The blocks' moments combined (Chan) against np.mean / np.var in float64: float64
    input to 1e-12 relative even with |mean| = 1e4 std (a plain sum of squares would lose
    8 digits there), float32 input to float32 rounding."""
    rng = np.random.default_rng(1)
    axes = (0, 1, 2) if fmt == "NHWC" and len(shape) == 4 else (0, 2, 3) if len(shape) == 4 \
        else (0,)
    c = shape[-1] if fmt == "NHWC" else shape[1]
    x64 = rng.normal(offset, 1.0, shape) * rng.uniform(0.5, 2, c).reshape(
        [c if i not in axes else 1 for i in range(len(shape))])
    for dtype, rtol in ((np.float64, 1e-12), (np.float32, 2e-5)):
        x = x64.astype(dtype)
        ref = x.astype(np.float64)
        b = norm._blocks(x.shape, fmt, x.itemsize)
        xs = b.views(x)
        flat = np.empty(b.scratch_size + 2 * len(b.counts) * b.c, dtype)
        mean, var = np.empty(c, dtype), np.empty(c, dtype)
        b.moments(xs, b.scratch(flat, xs), flat[b.scratch_size:], mean, var)
        assert len(xs) > 3
        np.testing.assert_allclose(mean, ref.mean(axis=axes), rtol=rtol)
        np.testing.assert_allclose(var, ref.var(axis=axes), rtol=rtol * (1 if dtype == np.float64
                                                                          else 10))


@pytest.mark.parametrize("offset,fast", [(0.5, True), (3e3, False)])
def test_normalisation_form_keeps_float32_accuracy(offset, fast, monkeypatch):
    """x * scale + shift (one pass fewer) only while |beta - mean * scale| is small; a
    channel whose mean is 3000 std from 0 takes the centred form: the folded one would be
    off by ~1e-4 there (its error grows with |mean| / std)."""
    rng = np.random.default_rng(2)
    x = f32(rng.normal(offset, 1.0, (N, H, W, C)))
    gamma, beta = f32(rng.uniform(0.5, 1.5, C)), f32(rng.normal(0, 0.5, C))
    a = {"is_training": True, "epsilon": 1e-5, "momentum": 0.1, "data_format": "NHWC"}
    used = []
    for form in ("affine", "normalize"):
        real = getattr(norm._Blocks, form)
        monkeypatch.setattr(norm._Blocks, form, lambda self, *args, _f=real, _n=form: (
            used.append(_n), _f(self, *args))[1])
    outs = [np.empty_like(x)] + [np.empty(C, np.float32) for _ in range(4)]
    norm.batch_norm([x, gamma, beta, np.zeros(C, np.float32), np.ones(C, np.float32)], outs,
                    a, None)
    assert used == ["affine" if fast else "normalize"]
    # Exact arithmetic on the kernel's own float32 statistics (their accuracy is tested
    # above; the float32 mean of values near 3000 is itself 1e-4 off).
    mean, var = outs[3].astype(np.float64), outs[4].astype(np.float64)
    want = (x.astype(np.float64) - mean) / np.sqrt(var + 1e-5) * gamma + beta
    np.testing.assert_allclose(outs[0], want, rtol=0, atol=2e-6)


@pytest.mark.parametrize("op", ["ReLU", "ReLU6"])
def test_fused_activation_is_the_kernel_bit_for_bit(op):
    """Signed zeros, NaN and infinities included (compared as bit patterns), on rows of the
    widths the blocks use."""
    from todkit.opset.registry import get_op
    from todkit.runtime.rewrite_norm_act import ACTS

    special = f32([-0.0, 0.0, -1e-30, 1e-30, 5.999999, 6.0, 6.000001, -np.inf, np.inf, np.nan,
                   -np.nan, 3.0])
    rng = np.random.default_rng(3)
    for width in (12, 96, 8160):
        y = np.concatenate([np.resize(special, width), f32(rng.normal(2, 4, 3 * width))])
        y = y.reshape(4, width)
        want = np.empty_like(y)
        get_op(op).kernel([y], [want], {}, None)
        got = y.copy()
        ACTS[op](got)
        np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
