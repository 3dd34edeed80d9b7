"""``todkit train`` / ``todkit eval`` / ``todkit info`` on the digits data set, and Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import numpy as np
import pytest

import tests.test_runtime_graphs as graphs
from todkit import lite
from todkit.cli import main
from todkit.formats import ms

pytest.importorskip("sklearn")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture
def mlp(tmp_path, monkeypatch):
    """A Dense(64, 10) train model with batch 32: digits flattened to 64 features."""
    monkeypatch.setattr(graphs, "BATCH", 32)
    monkeypatch.setattr(graphs, "IN", 64)
    monkeypatch.setattr(graphs, "OUT", 10)
    path = tmp_path / "mlp.ms"
    ms.write(graphs.train_graph("momentum", lr=0.05), path)
    return path


def test_train_then_eval_on_digits(mlp, tmp_path, capsys):
    out = tmp_path / "trained.ms"
    assert main(["train", str(mlp), "--data", "digits", "--epochs", "3", "--lr", "0.1",
                 "--out", str(out), "--no-progress"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [ln.split(":")[0] for ln in lines[:3]] == ["epoch 1", "epoch 2", "epoch 3"]
    assert "samples/s" in lines[0] and lines[-1] == f"trained model saved to {out}"
    losses = [float(ln.split("loss ")[1].split()[0]) for ln in lines[:3]]
    assert losses[2] < losses[0]
    m = lite.Model()
    m.build_from_file(str(out), lite.ModelType.MINDIR_LITE, lite.Context(), lite.TrainCfg())
    assert m.get_learning_rate() == pytest.approx(0.1)
    assert main(["eval", str(out), "--data", "digits"]) == 0
    acc = float(capsys.readouterr().out.split("Accuracy is ")[1].split()[0])
    assert acc > 0.8


def test_train_on_an_npz_file_with_another_batch_size(mlp, tmp_path, capsys):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(40, 64)).astype(np.float32)
    np.savez(tmp_path / "d.npz", x=x, y=(x[:, 0] > 0).astype(np.int32))
    assert main(["train", str(mlp), "--data", str(tmp_path / "d.npz"), "--epochs", "1",
                 "--batch-size", "8", "--no-progress", "--out", str(tmp_path / "o.ms")]) == 0
    assert "epoch 1" in capsys.readouterr().out
    np.savez(tmp_path / "bad.npz", x=np.zeros((4, 3), np.float32), y=np.zeros(4, np.int32))
    assert main(["train", str(mlp), "--data", str(tmp_path / "bad.npz")]) == 1
    assert "takes [64]" in capsys.readouterr().err


def test_digits_fit_lenet_shaped_inputs():
    from todkit.cli.datasets import fit_images

    img = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    nhwc = fit_images(img, [32, 32, 32, 1], channels_last=True)
    nchw = fit_images(img, [32, 3, 32, 32], channels_last=False)
    assert nhwc.shape == (1, 32, 32, 1) and nchw.shape == (1, 3, 32, 32)
    assert nhwc[0, 4:8, 8:12, 0].tolist() == [[10.0] * 4] * 4  # pixel (1, 2) became 4x4
    np.testing.assert_array_equal(nchw[0, 2], nhwc[0, :, :, 0])


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(mlp, tmp_path):
    out = tmp_path / "ckpt.ms"
    proc = subprocess.Popen(
        [sys.executable, "-m", "todkit.cli", "train", str(mlp), "--epochs", "100000",
         "--no-progress", "--out", str(out)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = proc.stdout.readline()  # an epoch finished: training is under way
        assert first.startswith("epoch 1"), first + proc.stderr.read()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "interrupted; checkpoint saved" in err and "Traceback" not in err
    m = lite.Model()
    m.build_from_file(str(out), lite.ModelType.MINDIR_LITE, lite.Context(), lite.TrainCfg())
    assert m.get_train_mode()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temps


def test_plot_is_written(mlp, tmp_path):
    pytest.importorskip("matplotlib")
    assert main(["train", str(mlp), "--epochs", "2", "--no-progress", "--out",
                 str(tmp_path / "o.ms"), "--plot", str(tmp_path / "loss.png")]) == 0
    assert (tmp_path / "loss.png").read_bytes()[:4] == b"\x89PNG"


def test_info_shows_runtime_view(mlp, capsys):
    assert main(["info", str(mlp)]) == 0
    out = capsys.readouterr().out
    assert "runtime: train model" in out and "trained weights: 2, 650 values" in out
    assert "optimizer ApplyMomentum" in out and "learning rate: 0.05" in out
    assert "planned memory: arena" in out


@pytest.mark.parametrize("cmd", ["train", "eval", "info"])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e:
        main([cmd, "--help"])
    assert e.value.code == 0
    text = capsys.readouterr().out
    assert f"todkit {cmd}" in text
    if cmd != "info":
        assert "digits" in text and "upscaled" in text


def test_threads_train_as_one_thread_and_a_bad_count_names_the_flag(mlp, tmp_path, capsys):
    losses = []
    for threads in ("1", "2"):
        out = tmp_path / f"t{threads}.ms"
        assert main(["train", str(mlp), "--epochs", "2", "--threads", threads,
                     "--out", str(out), "--no-progress"]) == 0
        lines = capsys.readouterr().out.splitlines()
        losses.append([ln.split("loss ")[1].split()[0] for ln in lines[:2]])
    assert losses[0] == losses[1]
    assert main(["eval", str(tmp_path / "t2.ms"), "--threads", "2"]) == 0
    assert "Accuracy is" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["train", str(mlp), "--threads", "0"])
    assert "--threads" in capsys.readouterr().err
