"""The main job, end to end: LeNet5 on scikit-learn's 8x8 digits (upscaled to 32x32).

1. server: define LeNet5 + loss + Adam with todkit's MindSpore-compatible API, export MINDIR;
2. convert: run ``converter_lite --fmk=MINDIR --trainModel=true`` on it;
3. device: train the ``.ms`` with todkit.lite, evaluate on a held-out split, export the
   inference model, reload it and check it predicts the same.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

BATCH = 32


def load_digits_32(seed: int):
    """Digits scaled to [0, 1] and upscaled 4x to LeNet5's 32x32, split 75/25 by class."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)
    x = np.kron(x, np.ones((1, 4, 4), np.float32))[:, None, :, :]  # N,1,32,32
    y = d.target.astype(np.int32)
    return train_test_split(x, y, test_size=0.25, random_state=seed, stratify=y)


def define_and_export(mindir_path: Path, lr: float, seed: int) -> None:
    import todkit as M
    from todkit import nn

    M.set_seed(seed)

    class LeNet5(nn.Cell):
        """MindSpore model zoo's LeNet5 (conv 1->6->16, Dense 400-120-84-10)."""

        def __init__(self, num_class=10, num_channel=1):
            super().__init__()
            self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
            self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
            self.fc1 = nn.Dense(16 * 5 * 5, 120)
            self.fc2 = nn.Dense(120, 84)
            self.fc3 = nn.Dense(84, num_class)
            self.relu = nn.ReLU()
            self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
            self.flatten = nn.Flatten()

        def construct(self, x):
            x = self.max_pool2d(self.relu(self.conv1(x)))
            x = self.max_pool2d(self.relu(self.conv2(x)))
            x = self.flatten(x)
            x = self.relu(self.fc1(x))
            x = self.relu(self.fc2(x))
            return self.fc3(x)

    net = LeNet5()
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    opt = nn.Adam(net.trainable_params(), learning_rate=lr, eps=1e-5, weight_decay=4e-5)
    train_net = nn.TrainOneStepCell(nn.WithLossCell(net, loss), opt)
    train_net.set_train()
    x = M.Tensor(np.zeros((BATCH, 1, 32, 32), np.float32))
    label = M.Tensor(np.zeros((BATCH,), np.int32))
    M.export(train_net, x, label, file_name=str(mindir_path), file_format="MINDIR")


def convert(mindir_path: Path, out_stem: Path) -> None:
    """Run converter_lite as a user would: the console script beside this Python."""
    tool = Path(sys.executable).with_name("converter_lite")
    cmd = [str(tool)] if tool.exists() else [sys.executable, "-m", "todkit.converter.cli"]
    cmd += ["--fmk=MINDIR", "--trainModel=true", f"--modelFile={mindir_path}",
            f"--outputFile={out_stem}"]
    print("$", " ".join(cmd[-4:]) if tool.exists() else " ".join(cmd))
    r = subprocess.run(cmd, capture_output=True, text=True)
    print(r.stdout.strip())
    if r.returncode != 0:
        sys.exit(f"converter_lite failed:\n{r.stderr}")


def batches(x, y, rng=None):
    idx = rng.permutation(len(x)) if rng is not None else np.arange(len(x))
    for i in range(0, len(idx) - BATCH + 1, BATCH):
        j = idx[i:i + BATCH]
        yield x[j], y[j]


def predict_all(model, x):
    """Logits for every sample; the last partial batch is padded with zeros."""
    inputs = model.get_inputs()
    outs = []
    for i in range(0, len(x), BATCH):
        chunk = x[i:i + BATCH]
        n = len(chunk)
        if n < BATCH:
            chunk = np.concatenate([chunk, np.zeros((BATCH - n,) + chunk.shape[1:], chunk.dtype)])
        inputs[0].set_data_from_numpy(chunk)
        outs.append(model.predict(inputs)[0].get_data_to_numpy()[:n])
    return np.concatenate(outs)


def train_on_device(ms_path: Path, x_tr, y_tr, epochs: int, seed: int):
    from tqdm import tqdm

    from todkit import lite

    model = lite.Model()
    model.build_from_file(str(ms_path), lite.ModelType.MINDIR_LITE, lite.Context(),
                          train_cfg=lite.TrainCfg())
    data, label = model.get_inputs()
    rng = np.random.default_rng(seed)
    steps = len(x_tr) // BATCH
    for epoch in range(epochs):
        model.set_train_mode(True)
        # A live bar on a terminal; in a log (CI, pipes) one line per epoch instead.
        bar = tqdm(batches(x_tr, y_tr, rng), total=steps, desc=f"epoch {epoch + 1}/{epochs}",
                   unit="step", leave=True, file=sys.stdout, disable=not sys.stdout.isatty())
        total = 0.0
        for k, (xb, yb) in enumerate(bar, 1):
            data.set_data_from_numpy(xb)
            label.set_data_from_numpy(yb)
            model.run_step()
            loss = float(model.get_outputs()[0].get_data_to_numpy().reshape(-1)[0])
            total += loss
            bar.set_postfix(loss=f"{loss:.4f}", avg=f"{total / k:.4f}")
        if bar.disable:
            print(f"epoch {epoch + 1}/{epochs}: {steps} steps, average loss {total / steps:.4f}")
    model.set_train_mode(False)
    return model


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="out/demo", help="folder for the files it writes")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--lr", type=float, default=0.003)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    x_tr, x_te, y_tr, y_te = load_digits_32(args.seed)
    print(f"digits: {len(x_tr)} train / {len(x_te)} test images, 1x32x32")
    # converter_lite makes the model's image input NHWC ([32, 32, 32, 1]), as MindSpore Lite's
    # converter does: the device side feeds NHWC images
    x_tr, x_te = (np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in (x_tr, x_te))

    mindir_path = out / "lenet_tod.mindir"
    define_and_export(mindir_path, args.lr, args.seed)
    print(f"[server] exported {mindir_path} ({mindir_path.stat().st_size} bytes)")
    ms_path = out / "lenet_tod.ms"
    convert(mindir_path, out / "lenet_tod")
    print(f"[convert] wrote {ms_path} ({ms_path.stat().st_size} bytes)")

    model = train_on_device(ms_path, x_tr, y_tr, args.epochs, args.seed)
    logits = predict_all(model, x_te)
    acc = float(np.mean(logits.argmax(1) == y_te))
    print(f"[device] test accuracy {acc:.4f} on {len(x_te)} held-out digits")

    trained = out / "lenet_tod_trained.ms"
    infer = out / "lenet_tod_infer.ms"
    model.export(str(trained))
    model.export(str(infer), export_inference_only=True)
    from todkit import lite

    reloaded = lite.Model()
    reloaded.build_from_file(str(infer), lite.ModelType.MINDIR_LITE, lite.Context())
    logits2 = predict_all(reloaded, x_te)
    same = np.allclose(logits, logits2, rtol=1e-5, atol=1e-5)
    print(f"[device] reloaded {infer}: predictions {'match' if same else 'DIFFER'} "
          f"(max |diff| {np.abs(logits - logits2).max():.2e})")
    print(f"files: {os.path.abspath(out)}/ (lenet_tod.mindir, lenet_tod.ms, "
          f"lenet_tod_trained.ms, lenet_tod_infer.ms)")
    print(f"done in {time.perf_counter() - t0:.1f} s")
    if acc < 0.95:
        print("FAILED: test accuracy below 95%")
        return 1
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
