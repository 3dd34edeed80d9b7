"""``todkit eval MODEL.ms --data digits|FILE.npz``: classification accuracy of a train or
inference model on held-out data (digits: the last quarter; .npz: x_test/y_test, else x/y)."""

from __future__ import annotations

import sys

import numpy as np

from todkit.cli.datasets import DATA_HELP
from todkit.cli.options import add_threads


def add_parser(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of a .ms model on digits or an .npz file",
                       description=__doc__)
    p.add_argument("model", help=".ms model (train or inference)")
    p.add_argument("--data", default="digits", help=DATA_HELP)
    add_threads(p)
    p.set_defaults(run=run)


def run(args) -> int:
    from todkit import lite
    from todkit.cli import datasets

    model = lite.Model()
    model.build_from_file(args.model, lite.ModelType.MINDIR_LITE,
                          lite.Context(args.threads),
                          train_cfg=lite.TrainCfg())
    model.set_train_mode(False)
    data = model.get_inputs()[0]
    x, y, x_test, y_test = datasets.load(args.data, data)
    if len(x_test):
        x, y = x_test, y_test
    batch = data.shape[0]
    correct = total = 0
    for k in range(len(x) // batch):
        logits = model.predict([x[k * batch:(k + 1) * batch]])[0].get_data_to_numpy()
        correct += int(np.sum(logits.argmax(1) == y[k * batch:(k + 1) * batch]))
        total += batch
    if not total:
        print(f"todkit eval: {len(x)} samples make no batch of {batch}", file=sys.stderr)
        return 1
    print(f"Accuracy is {correct / total:g} ({correct}/{total} samples)")
    return 0
