"""Shared pieces of the fuzz harnesses: seed selection and the verdict on one input.

A harness passes when the reader returns or raises a ``TodkitError``; anything else (a bare
Python exception, a hang caught by libFuzzer's ``-timeout``, memory over ``-rss_limit_mb``) is
a finding. A ``GraphFileError`` that only wraps an unexpected exception (the MINDIR reader's
last-resort net, "cannot read MINDIR: KeyError: ...") counts as a finding too: the reader
should have said what is wrong itself.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("TODKIT_SHARED", ROOT.parent / "shared")) / "corpus"
HOSTILE = ROOT / "tests" / "fixtures" / "hostile"
WORK = Path(__file__).resolve().parent / "work"
# LeNet's files (up to 808 KB) are seeds too; the 18 MB seed example is left out (its one
# Dense layer's weights would make every mutation slow and add no structure).
MAX_SEED_BYTES = 1_000_000


def own_models() -> Path:
    """A model todkit itself exports and converts (Conv2d, ReLU, MaxPool2d, Dense, sparse
    cross entropy, Momentum), made once into work/own/ as .mindir and .ms. (With BatchNorm2d
    the conversion fails: see the strict xfail in tests/test_hostile_inputs.py.)"""
    own = WORK / "own"
    if (own / "own_cnn_train.ms").exists():
        return own
    import numpy as np

    import todkit as M
    from todkit.common.parameter import ParameterTuple
    from todkit.converter.convert import convert
    from todkit.train.serialization import export

    class Net(M.nn.Cell):
        def __init__(self):
            super().__init__()
            self.conv = M.nn.Conv2d(1, 2, 3, pad_mode="same")
            self.relu = M.nn.ReLU()
            self.pool = M.nn.MaxPool2d(2, 2)
            self.flatten = M.nn.Flatten()
            self.fc = M.nn.Dense(2 * 2 * 2, 3)

        def construct(self, x):
            return self.fc(self.flatten(self.pool(self.relu(self.conv(x)))))

    own.mkdir(parents=True, exist_ok=True)
    net = Net()
    loss = M.nn.WithLossCell(net, M.nn.SoftmaxCrossEntropyWithLogits(sparse=True,
                                                                     reduction="mean"))
    opt = M.nn.Momentum(ParameterTuple(net.trainable_params()), learning_rate=0.01,
                        momentum=0.9)
    x = M.Tensor(np.ones((2, 1, 4, 4), np.float32))
    y = M.Tensor(np.zeros(2, np.int32))
    export(M.nn.TrainOneStepCell(loss, opt), x, y, file_name=str(own / "own_cnn_train"),
           file_format="MINDIR")
    convert(str(own / "own_cnn_train.mindir"), str(own / "own_cnn_train"), True)
    return own


def seed_dir(name: str, suffixes: tuple[str, ...]) -> Path:
    """A working corpus for ``name`` seeded with the real files, our hostile fixtures and
    models todkit exports itself."""
    work = WORK / name / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    sources = [p for base in (CORPUS, HOSTILE, own_models()) if base.exists()
               for p in base.rglob("*")]
    for p in sources:
        if p.is_file() and p.name.endswith(suffixes) and p.stat().st_size <= MAX_SEED_BYTES:
            target = work / f"seed_{p.parent.name}_{p.name}"
            if not target.exists():
                shutil.copyfile(p, target)
    return work


def check_outcome(call, data: bytes) -> None:
    from known import KNOWN, signature

    from todkit.core.errors import TodkitError

    try:
        call(data)
    except TodkitError as e:
        cause = e.__cause__
        if cause is not None and not isinstance(cause, TodkitError) and \
                "cannot read MINDIR:" in str(e):
            raise AssertionError(f"unexplained failure behind: {e}") from cause
    except Exception as e:
        if signature(e) not in KNOWN:
            raise


def libfuzzer_args(name: str, argv: list[str]) -> list[str]:
    """argv plus defaults: the working corpus, crash files under work/<name>/, 5 s timeout."""
    args = list(argv)
    if not any(a.startswith("-artifact_prefix=") for a in args):
        args.append(f"-artifact_prefix={WORK / name}/")
    if not any(a.startswith("-timeout=") for a in args):
        args.append("-timeout=5")
    return args
