"""``todkit train MODEL.ms --data digits|FILE.npz``: train a converted train model on the
device runtime with a progress bar; Ctrl-C saves a checkpoint and exits cleanly."""

from __future__ import annotations

import os
import signal
import sys
import time

from todkit.cli.datasets import DATA_HELP
from todkit.cli.options import add_threads

INTERRUPTED = 130


def add_parser(sub) -> None:
    p = sub.add_parser("train", help="train a .ms train model on digits or an .npz file",
                       description=__doc__)
    p.add_argument("model", help="train model (.ms, converted with --trainModel=true)")
    p.add_argument("--data", default="digits", help=DATA_HELP)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--batch-size", type=int, default=None,
                   help="default: the model's (fixed at export); another size resizes the "
                        "model, which fails for graphs whose weights fix the batch")
    p.add_argument("--lr", type=float, default=None, help="learning rate (default: the file's)")
    p.add_argument("--out", default=None,
                   help="trained model path (default: MODEL_trained.ms); Ctrl-C saves here too")
    p.add_argument("--plot", default=None, help="save a loss/accuracy plot (PNG, matplotlib)")
    p.add_argument("--seed", type=int, default=0, help="shuffle seed")
    add_threads(p)
    p.add_argument("--no-progress", action="store_true",
                   help="one line per epoch, no bar (the default when stderr is not a terminal)")
    p.set_defaults(run=run)


class _Stop(Exception):
    """Raised between steps after Ctrl-C, so the weights are consistent when saved."""


def _progress_callback(lite, total_steps: int, batch: int, show_bar: bool):
    class Progress(lite.TrainCallBack):
        def __init__(self):
            self.interrupted = False
            self.history: list[tuple[int, float, float]] = []
            self.bar = None

        def begin(self, d):
            if show_bar:
                from tqdm import tqdm
                self.bar = tqdm(total=total_steps, unit="step", file=sys.stderr)

        def epoch_begin(self, d):
            self.t0, self.loss, self.correct, self.n = time.perf_counter(), 0.0, 0.0, 0

        def step_end(self, d):
            m = d.model
            self.loss += float(m.get_outputs()[0].get_data_to_numpy().reshape(-1)[0])
            acc = lite.callbacks.classification_accuracy(m.get_inputs()[1],
                                                         m.get_predictions()[0])
            self.correct += acc
            self.n += 1
            rate = self.n * batch / max(time.perf_counter() - self.t0, 1e-9)
            if self.bar is not None:
                self.bar.update(1)
                self.bar.set_postfix(epoch=d.epoch + 1, loss=f"{self.loss / self.n:.4f}",
                                     acc=f"{self.correct / self.n:.3f}",
                                     samples_s=f"{rate:.0f}")
            if self.interrupted:
                raise _Stop

        def epoch_end(self, d):
            n = max(self.n, 1)
            self.history.append((d.epoch + 1, self.loss / n, self.correct / n))
            if self.bar is None:
                rate = self.n * batch / max(time.perf_counter() - self.t0, 1e-9)
                print(f"epoch {d.epoch + 1}: loss {self.loss / n:.4f} accuracy "
                      f"{self.correct / n:.4f} ({rate:.0f} samples/s)", flush=True)
            return lite.RetValue.CONTINUE

        def end(self, d):
            if self.bar is not None:
                self.bar.close()

    return Progress()


def plot(history, path: str) -> None:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        from todkit.core.errors import ParamError
        raise ParamError("--plot needs matplotlib (pip install 'todkit[demo]')") from e
    epochs = [h[0] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h[1] for h in history], "o-", label="loss")
    ax.plot(epochs, [h[2] for h in history], "s-", label="train accuracy")
    ax.set_xlabel("epoch")
    ax.legend()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)


def run(args) -> int:
    from todkit import lite
    from todkit.cli import datasets

    model = lite.Model()
    model.build_from_file(args.model, lite.ModelType.MINDIR_LITE,
                          lite.Context(args.threads),
                          train_cfg=lite.TrainCfg())
    if not model.get_train_mode():
        print(f"todkit train: {args.model} is an inference model (no loss node)",
              file=sys.stderr)
        return 1
    data, label = model.get_inputs()[:2]
    if args.batch_size and args.batch_size != data.shape[0]:
        model.resize([data, label], [[args.batch_size, *data.shape[1:]],
                                     [args.batch_size, *label.shape[1:]]])
    batch = data.shape[0]
    x, y, _, _ = datasets.load(args.data, data, label)
    if args.lr is not None:
        model.set_learning_rate(args.lr)
    ds = lite.ArrayDataset(x, y, batch_size=batch, shuffle=True, seed=args.seed)
    if len(ds) == 0:
        print(f"todkit train: {len(x)} samples make no batch of {batch}", file=sys.stderr)
        return 1
    out = args.out or f"{os.path.splitext(args.model)[0]}_trained.ms"
    progress = _progress_callback(lite, args.epochs * len(ds), batch,
                                  # a live bar on a terminal; in logs one line per epoch
                                  show_bar=not args.no_progress and sys.stderr.isatty())

    def on_sigint(signum, frame):
        progress.interrupted = True  # stop after the current step, then save

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        model.train(args.epochs, ds, [progress])
    except _Stop:
        progress.end(None)
        model.export(out)
        print(f"todkit train: interrupted; checkpoint saved to {out}", file=sys.stderr)
        return INTERRUPTED
    finally:
        signal.signal(signal.SIGINT, previous)
    model.export(out)
    print(f"trained model saved to {out}")
    if args.plot:
        plot(progress.history, args.plot)
        print(f"plot saved to {args.plot}")
    return 0
