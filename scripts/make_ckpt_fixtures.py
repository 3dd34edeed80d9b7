"""Write a real MindSpore 2.10 checkpoint of model-zoo LeNet5 (fixture for the checkpoint tests).

Run it with MindSpore's own interpreter (not the project's .venv):

    /work/venvs/ms/bin/python scripts/make_ckpt_fixtures.py [--out tests/fixtures/ckpt]

It builds LeNet5 exactly as MindSpore's model zoo defines it (models/official/cv/lenet:
conv1 Conv2d(1, 6, 5, valid), conv2 Conv2d(6, 16, 5, valid), fc1 Dense(400, 120),
fc2 Dense(120, 84), fc3 Dense(84, 10), Normal(0.02) weights, ReLU, MaxPool2d(2, 2), Flatten)
with ``mindspore.set_seed(1)`` and writes

- ``lenet5_mindspore.ckpt``      ``mindspore.save_checkpoint(net, ...)`` (protobuf ``Checkpoint``);
- ``lenet5_mindspore.npz``       the parameters as ``mindspore.load_checkpoint`` reads them back
                                 (name -> float32 array), the expected values for a reader;
- ``lenet5_mindspore.json``      parameter names, shapes and dtypes in file order, the logits of
                                 the net on ``lenet5_mindspore_x.npy`` (a 2x1x32x32 input), and the
                                 MindSpore version.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

try:
    import mindspore as ms
    from mindspore import Tensor, nn
    from mindspore.common.initializer import Normal
except ImportError:  # pragma: no cover - this script runs only in MindSpore's venv
    sys.exit("make_ckpt_fixtures.py needs MindSpore 2.10: run it with /work/venvs/ms/bin/python")

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "tests" / "fixtures" / "ckpt"


class LeNet5(nn.Cell):
    """MindSpore model zoo's LeNet5 (models/official/cv/lenet/src/lenet.py)."""

    def __init__(self, num_class=10, num_channel=1, include_top=True):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channel, 6, 5, pad_mode="valid")
        self.conv2 = nn.Conv2d(6, 16, 5, pad_mode="valid")
        self.relu = nn.ReLU()
        self.max_pool2d = nn.MaxPool2d(kernel_size=2, stride=2)
        self.include_top = include_top
        if self.include_top:
            self.flatten = nn.Flatten()
            self.fc1 = nn.Dense(16 * 5 * 5, 120, weight_init=Normal(0.02))
            self.fc2 = nn.Dense(120, 84, weight_init=Normal(0.02))
            self.fc3 = nn.Dense(84, num_class, weight_init=Normal(0.02))

    def construct(self, x):
        x = self.conv1(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        x = self.conv2(x)
        x = self.relu(x)
        x = self.max_pool2d(x)
        if not self.include_top:
            return x
        x = self.flatten(x)
        x = self.relu(self.fc1(x))
        x = self.relu(self.fc2(x))
        x = self.fc3(x)
        return x


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    ms.set_context(mode=ms.GRAPH_MODE)
    ms.set_device("CPU")
    ms.set_seed(1)
    args.out.mkdir(parents=True, exist_ok=True)
    net = LeNet5()
    ckpt = args.out / "lenet5_mindspore.ckpt"
    if ckpt.exists():
        ckpt.unlink()
    ms.save_checkpoint(net, str(ckpt))
    ckpt.chmod(0o644)  # MindSpore writes checkpoints read-only
    loaded = ms.load_checkpoint(str(ckpt))
    params = {k: v.asnumpy() for k, v in loaded.items()}
    np.savez(args.out / "lenet5_mindspore.npz", **params)
    x = np.random.default_rng(7).standard_normal((2, 1, 32, 32)).astype(np.float32)
    np.save(args.out / "lenet5_mindspore_x.npy", x)
    net.set_train(False)
    logits = net(Tensor(x)).asnumpy()
    meta = {
        "mindspore_version": ms.__version__,
        "net": "model-zoo LeNet5 (num_class=10, num_channel=1), mindspore.set_seed(1)",
        "saved_with": "mindspore.save_checkpoint(net, 'lenet5_mindspore.ckpt')",
        "parameters": [{"name": k, "shape": list(v.shape), "dtype": str(v.dtype)}
                       for k, v in params.items()],
        "input": "lenet5_mindspore_x.npy",
        "logits": logits.tolist(),
    }
    (args.out / "lenet5_mindspore.json").write_text(json.dumps(meta, indent=1) + "\n")
    print(f"{ckpt}: {ckpt.stat().st_size} bytes, {len(params)} parameters")
    return 0


if __name__ == "__main__":
    sys.exit(main())
