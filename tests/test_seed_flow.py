"""The seed example end to end, as a user runs it: the MindSpore example with only its
imports changed, converter_lite as a process, then five run_steps on the device runtime."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from tests.seed_example import SEED_EXAMPLE


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("seed")
    (d / "seed.py").write_text(SEED_EXAMPLE)
    r = subprocess.run([sys.executable, "seed.py"], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert (d / "my_net_tod.mindir").exists()
    r = subprocess.run([sys.executable, "-m", "todkit.converter.cli", "--fmk=MINDIR",
                        "--trainModel=true", "--modelFile=my_net_tod.mindir",
                        "--outputFile=my_net_tod"], cwd=d, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().endswith("CONVERT RESULT SUCCESS:0")
    return d


def test_seed_mindir_holds_the_training_graph(seed_files):
    from todkit.formats import mindir

    g = mindir.read(str(seed_files / "my_net_tod.mindir"))
    ops = g.op_counts()
    for op in ("Reshape", "MatMul", "BiasAdd", "SoftmaxCrossEntropyWithLogits", "BiasAddGrad",
               "Adam", "Assign"):
        assert ops.get(op), f"{op} missing from {ops}"
    assert ops["Adam"] == 2
    params = {c.name for c in g.consts if c.param}
    assert {"fc.weight", "fc.bias", "moment1.fc.weight", "moment2.fc.weight", "moment1.fc.bias",
            "moment2.fc.bias", "beta1_power", "beta2_power", "learning_rate"} <= params
    assert [v.type.shape for v in g.inputs] == [(32, 3, 224, 224), (32, 10)]


def test_seed_trains_on_device(seed_files):
    from todkit import lite

    model = lite.Model()
    model.build_from_file(str(seed_files / "my_net_tod.ms"), lite.ModelType.MINDIR_LITE,
                          lite.Context(), train_cfg=lite.TrainCfg())
    inputs = model.get_inputs()
    # the converter makes the 4-D input NHWC, as MindSpore Lite's converter does
    assert [tuple(t.shape) for t in inputs] == [(32, 224, 224, 3), (32, 10)]
    rng = np.random.default_rng(0)
    x = rng.standard_normal((32, 3, 224, 224)).astype(np.float32)
    cls = (x[:, 0, :8, :8].mean(axis=(1, 2)) > 0).astype(int)  # a learnable rule
    label = np.eye(10, dtype=np.float32)[cls]
    inputs[0].set_data_from_numpy(np.ascontiguousarray(x.transpose(0, 2, 3, 1)))
    inputs[1].set_data_from_numpy(label)
    model.set_train_mode(True)
    losses = []
    for _ in range(5):
        model.run_step()
        losses.append(float(model.get_outputs()[0].get_data_to_numpy().sum()))
    assert losses[-1] < losses[0] * 0.7, losses
    model.set_train_mode(False)
    logits = model.predict(inputs)[0].get_data_to_numpy()
    assert logits.shape == (32, 10)
    assert np.mean(logits.argmax(1) == cls) > 0.9
    assert model.get_learning_rate() == pytest.approx(1e-3)
