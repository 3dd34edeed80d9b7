"""Every corpus MINDIR through converter_lite: compared with the real converter's .ms where there
is one (``todkit diff``), then loaded on the runtime, one train step and one eval.

Where something cannot be matched, the exact list of differences the diff reports is written
out, so a change in either direction makes the test fail.
"""

from __future__ import annotations

import numpy as np
import pytest

from tests.shared_paths import LITE, MS210, need
from todkit import lite
from todkit.converter import cli
from todkit.formats import ms
from todkit.formats.ms import fbread
from todkit.formats.ms.diff import DiffOptions, diff

# Every train .ms of the corpus is reproduced node for node (order, names, bytes).
TINY = ["tiny_adam_train", "tiny_momentum_train", "tiny_sgd_train"]
FORMS = ("ms210", "v1")


def convert(mindir, out_base, train=True) -> str:
    rc = cli.main(["--fmk=MINDIR", f"--modelFile={mindir}", f"--outputFile={out_base}",
                   f"--trainModel={'true' if train else 'false'}"])
    assert rc == 0, f"converter_lite failed on {mindir}"
    return f"{out_base}.ms"


def build(path) -> lite.Model:
    model = lite.Model()
    model.build_from_file(str(path), lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    return model


def batch(model: lite.Model, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    data = []
    for t in model.get_inputs():
        shape = tuple(t.shape)
        if np.dtype(t.get_data_to_numpy().dtype).kind in "iu":
            data.append(rng.integers(0, 3, shape).astype(np.int32))
        else:
            data.append(rng.standard_normal(shape).astype(np.float32))
    return data


def train_losses(model: lite.Model, steps: int) -> list[float]:
    model.set_train_mode(True)
    losses = []
    for step in range(steps):
        for t, x in zip(model.get_inputs(), batch(model, step)):
            t.set_data_from_numpy(x)
        assert model.run_step()
        losses.append(float(model.get_outputs()[0].get_data_to_numpy().ravel()[0]))
    return losses


def train_and_eval(path) -> None:
    model = build(path)
    loss = train_losses(model, 1)[0]
    assert np.isfinite(loss)
    model.set_train_mode(False)
    outs = model.predict(model.get_inputs())
    assert outs and all(np.isfinite(o.get_data_to_numpy()).all() for o in outs)


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", TINY)
def test_tiny_matches_real_converter(name, form, tmp_path):
    real = need(LITE / f"{name}.ms")
    ours = convert(need(LITE / f"{name}.{form}.mindir"), tmp_path / name)
    assert diff(real, ours) == []


@pytest.mark.parametrize("form", FORMS)
@pytest.mark.parametrize("name", TINY)
def test_tiny_trains_like_real_file(name, form, tmp_path):
    """Ours and the real .ms, trained from the same weights on the same batches, agree."""
    ours = build(convert(need(LITE / f"{name}.{form}.mindir"), tmp_path / name))
    real = build(need(LITE / f"{name}.ms"))
    np.testing.assert_allclose(train_losses(ours, 3), train_losses(real, 3), rtol=1e-6)
    train_and_eval(tmp_path / f"{name}.ms")


def test_lenet_converts_trains_and_evals(tmp_path):
    ours = convert(need(LITE / "lenet_tod.ms210.mindir"), tmp_path / "lenet")
    train_and_eval(ours)


def test_lenet_matches_real_converter(tmp_path):
    """The NHWC conversion: NHWC data input, KHWC conv weights, the Transposes around Flatten
    and MaxPoolGrad with their names and perms, every tensor format and attribute; the node
    order of the real exporter's walk (beta-power updates, weight post-perms, AssignAdd and
    the Assigns first) and the constants numbered in that order."""
    ours = convert(need(LITE / "lenet_tod.ms210.mindir"), tmp_path / "lenet")
    assert diff(LITE / "lenet_tod.ms", ours) == []


def test_lenet_trains_like_real_file(tmp_path):
    ours = build(convert(need(LITE / "lenet_tod.ms210.mindir"), tmp_path / "lenet"))
    real = build(need(LITE / "lenet_tod.ms"))
    assert tuple(ours.get_inputs()[0].shape) == (32, 32, 32, 1)
    np.testing.assert_allclose(train_losses(ours, 3), train_losses(real, 3), rtol=1e-5)


@pytest.mark.parametrize("name", ["mlp_digits_train", "my_net_tod",
                                  "smallcnn_bn_sgd_train", "resnet_tl_head_train"])
def test_mindspore_train_export_converts_trains_and_evals(name, tmp_path):
    train_and_eval(convert(need(MS210 / f"{name}.mindir"), tmp_path / name))


@pytest.mark.parametrize("name", ["lenet5_infer", "smallcnn_bn_infer"])
def test_mindspore_infer_export_converts_and_predicts(name, tmp_path):
    path = convert(need(MS210 / f"{name}.mindir"), tmp_path / name, train=False)
    model = ms.read(path)
    assert model.graph.outputs
    m = lite.Model()
    m.build_from_file(path, lite.ModelType.MINDIR_LITE, lite.Context())
    for t, x in zip(m.get_inputs(), batch(m, 0)):
        t.set_data_from_numpy(x)
    outs = m.predict(m.get_inputs())
    assert all(np.isfinite(o.get_data_to_numpy()).all() for o in outs)


# lenet_infer.ms is the real inference conversion of a LeNet5 exported on its own (scopes
# "Default/conv1-Conv2d/..."); mindspore-2.10/lenet5_infer.mindir is the same architecture
# exported inside a WithLossCell (scopes "Default/network-WithLossCell/_backbone-LeNet5/...")
# with other weights. So names are compared with that scope removed and weights not at all.
OUR_INFER_SCOPE = "Default/network-WithLossCell/_backbone-LeNet5/"


def test_lenet_infer_matches_real_inference_conversion(tmp_path):
    """--trainModel=false: Conv2DFusion{RELU}, MatMulFusion{RELU} with the bias as third
    input, fc3's MatMulFusion writing the graph output under BiasAdd's name, NHWC-tagged
    weights; node for node the same as the real file."""
    ours = convert(need(MS210 / "lenet5_infer.mindir"), tmp_path / "infer", train=False)
    real = LITE / "lenet_infer.ms"
    assert diff(real, ours, DiffOptions(names=False, data=False)) == []
    real_names = [n.name for n in ms.read(real).graph.nodes]
    our_names = [n.name.replace(OUR_INFER_SCOPE, "Default/") for n in ms.read(ours).graph.nodes]
    assert our_names == real_names  # the reader's split nodes included
    differing = [line for line in diff(real, ours, DiffOptions(names=False)) if "data" in line]
    assert differing and all(": data differs in " in line for line in differing)


def test_train_conversion_fuses_only_unmarked_nodes(tmp_path):
    """An inference MINDIR converted with --trainModel=true is still fused (nothing is marked);
    a train MINDIR is not (lenet_tod: every Conv2D/MatMul shares its weight with Adam)."""
    path = convert(need(MS210 / "lenet5_infer.mindir"), tmp_path / "infer_t", train=True)
    written = [n["name"] for n in fbread.decode(open(path, "rb").read(), path)["nodes"]]
    assert len(written) == 11  # the 9 fused nodes + the two conv weights' post-perms
    ops = [n.op for n in ms.read(path).graph.nodes]
    assert ops.count("ReLU") == 4 and ops.count("BiasAdd") == 3  # split again by the reader
    tod = [n["primitive"]["value_type"] for n in fbread.decode(
        open(convert(need(LITE / "lenet_tod.ms210.mindir"), tmp_path / "tod"), "rb").read(),
        "tod")["nodes"]]
    assert len(tod) == 70  # nothing fused
