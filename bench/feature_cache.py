"""W4 / W5 with the feature cache: epoch times of transfer learning with a frozen backbone.

    .venv/bin/python bench/feature_cache.py [--workloads W4,W5] [--batches 10] [--epochs 4]
                                            [--peers bench/results/bench-....json]

Issue 6: "W4 and W5 with the feature cache cost, per epoch after the first, less than a
hundredth of any peer's epoch". An epoch here is ``--batches`` batches of the workload's batch
size (default 10 x 16 = 160 distinct images, a fixed-seed ArrayDataset, reshuffled each epoch).
The model is the workload's network split where its classifier starts, as MindSpore Lite's
transfer learning does: the backbone up to the global pooling as an inference .ms
(``--trainModel=false``), the classifier Dense + loss + SGD as a train .ms, joined with
``lite.build_transfer_learning(..., feature_cache=True)`` and trained with ``Model.train``.
The first epoch runs the backbone once per sample; later epochs run only the head. A peer's
epoch is ``--batches`` times its median train step (classifier only, the same workload) from
a ``bench/run.py`` results file; each run is its own process (peak RSS is its own).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from workloads import WORKLOADS  # noqa: E402


def _convert(mindir, stem, train):
    r = subprocess.run([sys.executable, "-m", "todkit.converter.cli", "--fmk=MINDIR",
                        f"--trainModel={'true' if train else 'false'}",
                        f"--modelFile={mindir}", f"--outputFile={stem}"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError(f"converter_lite failed: {r.stdout}{r.stderr}")
    return stem + ".ms"


def prepare(wid, cache):
    """Backbone (inference) and head (train) .ms files for workload ``wid``."""
    import numpy as np

    import todkit as M
    from todkit import nn
    from todkit.ops import operations as P

    w = WORKLOADS[wid]
    M.set_seed(1)
    if w.model == "mobilenetv2":
        from todkit.models.mobilenetv2 import GlobalAvgPooling, MobileNetV2Backbone

        body = MobileNetV2Backbone()
        pool, width = GlobalAvgPooling(), body.out_channels

        class Backbone(nn.Cell):
            def __init__(self):
                super().__init__()
                self.body, self.pool = body, pool

            def construct(self, x):
                return self.pool(self.body(x))
    else:
        from todkit.models.googlenet import GoogleNet

        body, width = GoogleNet(w.classes, include_top=False), 1024

        class Backbone(nn.Cell):
            def __init__(self):
                super().__init__()
                self.body, self.mean = body, P.ReduceMean(keep_dims=False)

            def construct(self, x):
                return self.mean(self.body(x), (2, 3))
    backbone = Backbone()
    backbone.set_train(False)
    x = np.zeros((w.batch, *w.input_shape), np.float32)
    M.export(backbone, M.Tensor(x), file_name=os.path.join(cache, "bb.mindir"),
             file_format="MINDIR")
    head = nn.Dense(width, w.classes)
    loss = nn.SoftmaxCrossEntropyWithLogits(sparse=True, reduction="mean")
    train_net = nn.TrainOneStepCell(nn.WithLossCell(head, loss),
                                    nn.SGD(head.trainable_params(), learning_rate=w.lr))
    train_net.set_train()
    M.export(train_net, M.Tensor(np.zeros((w.batch, width), np.float32)),
             M.Tensor(np.zeros((w.batch,), np.int32)),
             file_name=os.path.join(cache, "head.mindir"), file_format="MINDIR")
    return (_convert(os.path.join(cache, "bb.mindir"), os.path.join(cache, "bb"), False),
            _convert(os.path.join(cache, "head.mindir"), os.path.join(cache, "head"), True))


def run(wid, bb, head, batches, epochs, threads):
    """Train ``epochs`` epochs with the feature cache; epoch seconds and peak RSS."""
    import numpy as np

    from todkit import lite

    w = WORKLOADS[wid]
    model = lite.build_transfer_learning(bb, head, lite.Context(threads),
                                         train_cfg=lite.TrainCfg(), feature_cache=True)
    rng = np.random.default_rng(6)
    n = batches * w.batch
    x = rng.standard_normal((n, *w.input_shape), dtype=np.float32)
    data = model.get_inputs()[0]
    if list(data.shape) == [w.batch, *w.input_shape[1:], w.input_shape[0]]:
        x = np.ascontiguousarray(x.transpose(0, 2, 3, 1))  # the converter's NHWC input
    y = rng.integers(0, w.classes, size=(n,), dtype=np.int32)
    times = lite.TimeMonitor()
    lm = lite.LossMonitor(print_every_n_steps=0)
    model.train(epochs, lite.ArrayDataset(x, y, batch_size=w.batch, shuffle=True), [times, lm])
    losses = [avg for _, avg in lm.get_loss_points()]
    return {"epoch_s": list(times.epoch_seconds), "backbone_runs": model.backbone_runs,
            "losses": losses, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF)
            .ru_maxrss / 1024.0}


def peer_epochs(path, wid, batches, threads):
    """{framework: seconds per epoch} from a bench/run.py results file."""
    if not path:
        return {}
    doc = json.loads(Path(path).read_text())
    cells = doc["results"].get(wid, {}).get(str(threads), {})
    return {fw: r["median_ms"] * batches / 1e3 for fw, r in cells.items()
            if "median_ms" in r and not fw.startswith("todkit")}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workloads", default="W4,W5")
    ap.add_argument("--batches", type=int, default=10, help="batches per epoch")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--peers", default="", help="a bench/run.py results JSON")
    ap.add_argument("--out", default=str(HERE / "results"))
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        res = run(args.child[0], args.child[1], args.child[2], args.batches, args.epochs,
                  args.threads)
        print("FC-RESULT " + json.dumps(res))
        return 0
    results = {}
    for wid in args.workloads.split(","):
        cache = tempfile.mkdtemp(prefix="todkit-fc-")
        bb, head = prepare(wid, cache)
        env = dict(os.environ, OPENBLAS_NUM_THREADS=str(args.threads),
                   OMP_NUM_THREADS=str(args.threads))
        r = subprocess.run([sys.executable, __file__, "--batches", str(args.batches),
                            "--epochs", str(args.epochs), "--threads", str(args.threads),
                            "--child", wid, bb, head], capture_output=True, text=True, env=env)
        line = [s for s in r.stdout.splitlines() if s.startswith("FC-RESULT ")]
        if not line:
            raise RuntimeError(f"{wid}: {r.stderr[-2000:]}")
        res = json.loads(line[-1][len("FC-RESULT "):])
        res["peer_epoch_s"] = peer_epochs(args.peers, wid, args.batches, args.threads)
        results[wid] = res
        ep = res["epoch_s"]
        later = sorted(ep[1:])[len(ep[1:]) // 2] if len(ep) > 1 else None
        print(f"{wid}: {args.batches} batches x {WORKLOADS[wid].batch} per epoch, "
              f"{args.threads} thread(s): first epoch {ep[0]:.2f} s, later epochs "
              + ", ".join(f"{e * 1e3:.2f} ms" for e in ep[1:])
              + f"; backbone batches {res['backbone_runs']}; peak RSS "
              f"{res['peak_rss_mb']:.0f} MB")
        for fw, s in res["peer_epoch_s"].items():
            print(f"    vs {fw}: epoch {s:.2f} s; later todkit epoch / peer epoch = "
                  f"1/{s / later:.0f} ({'ok' if later < s / 100 else 'BEHIND'}: target < 1/100)")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"feature-cache-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps({"batches": args.batches, "epochs": args.epochs,
                                "threads": args.threads, "peers_from": args.peers,
                                "results": results}, indent=1) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
