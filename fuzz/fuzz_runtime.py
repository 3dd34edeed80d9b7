"""Coverage-guided fuzzing of the device runtime on files the ``.ms`` reader accepts.

    .venv/bin/python fuzz/fuzz_runtime.py -runs=100000  # see README.md, "Fuzzing"

Each input the reader (``todkit.formats.ms.read``) rejects with a typed error is done (the
reader has its own harness, fuzz_ms.py). An input it accepts is written to a file in a
RAM-backed folder and built with ``lite.Model().build_from_file``; then one ``predict`` on
fixed inputs (small floats, zeros for integer inputs such as labels) and, for a train model,
one ``run_step`` in train mode.

Findings, besides harness.check_outcome's (a bare exception, over ``-timeout``, over
``-rss_limit_mb``):
- a ``GraphFileError`` from build_from_file that only wraps a bare exception (the
  "is not a valid .ms model: KeyError ..." last-resort net);
- a ``TodkitError`` from predict or run_step that names no node of the graph.

Models whose values, planned together, would take more than ``MAX_MODEL_BYTES`` are skipped
before the build (a fuzzed shape can ask for terabytes, which a runtime rightly tries to
allocate); that limit keeps each case within the harness's memory and time budget.
"""

import atexit
import collections
import os
import sys
import tempfile
from pathlib import Path

import atheris
from harness import CORPUS, HOSTILE, ROOT, WORK, check_outcome, libfuzzer_args

with atheris.instrument_imports(include=["todkit"]):
    import numpy as np

    from todkit.core.errors import TodkitError
    from todkit.formats import ms
    from todkit.lite import Model, TrainCfg

SCRATCH = Path(tempfile.mkdtemp(prefix="todkit-fuzz-runtime-",
                                dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
TARGET = str(SCRATCH / "fuzz.ms")
MAX_MODEL_BYTES = 64 << 20
MAX_SEED_BYTES = 1 << 20  # LeNet's train .ms (764 KB) included
# How far the inputs got, printed every 10,000 cases and at a normal exit (libFuzzer's own
# exit skips atexit): how much of a run reached the runtime at all.
REACHED: collections.Counter = collections.Counter()


def _report() -> None:
    print(f"fuzz_runtime reached: {dict(REACHED)}", file=sys.stderr, flush=True)


atexit.register(_report)


def model_bytes(graph) -> int:
    """Every input, constant and node output of ``graph``, as bytes (an upper bound of what a
    build allocates, workspaces aside)."""
    values = list(graph.inputs) + [o for n in graph.nodes for o in n.outputs]
    return sum(v.type.nbytes for v in values)


def _fill(model: Model) -> list[np.ndarray]:
    out = []
    for t in model.get_inputs():
        a = np.zeros(t.shape, t.get_data_to_numpy().dtype)
        if a.dtype.kind == "f":
            a[...] = (np.arange(a.size, dtype=np.float64).reshape(a.shape) % 7 - 3) / 4
        out.append(a)
    return out


def _names_a_node(e: TodkitError, graph) -> bool:
    text = str(e)
    return any(n.name and n.name in text for n in graph.nodes)


def run(data: bytes) -> None:
    try:
        parsed = ms.read(data, where="fuzz.ms")
    except TodkitError:
        REACHED["rejected by the reader"] += 1
        return
    if model_bytes(parsed.graph) > MAX_MODEL_BYTES:
        REACHED["skipped: too big"] += 1
        return
    with open(TARGET, "wb") as f:
        f.write(data)
    model = Model()
    try:
        model.build_from_file(TARGET, train_cfg=TrainCfg())
    except TodkitError as e:
        cause = e.__cause__
        if cause is not None and not isinstance(cause, TodkitError):
            raise AssertionError(f"unexplained build failure behind: {e}") from cause
        REACHED["typed error at build"] += 1
        return
    graph = model.session.graph
    REACHED["built"] += 1
    try:
        model.predict(_fill(model))
        REACHED["predicted"] += 1
        if model.session.train is not None:
            model.set_train_mode(True)
            for t, a in zip(model.get_inputs(), _fill(model)):
                t.set_data_from_numpy(a)
            model.run_step()
            REACHED["trained a step"] += 1
    except TodkitError as e:
        REACHED["typed error running"] += 1
        if not _names_a_node(e, graph):
            raise AssertionError(f"a run error that names no node: {type(e).__name__}: "
                                 f"{e}") from e


def one_input(data: bytes) -> None:
    check_outcome(run, data)
    REACHED["cases"] += 1
    if REACHED["cases"] % 10_000 == 0:
        _report()


def converted_seeds() -> dict[str, bytes]:
    """Small train and inference models converted here from the corpus's MINDIR files."""
    from todkit.converter.convert import convert

    out = {}
    with tempfile.TemporaryDirectory() as d:
        for name, train in (("mlp_digits_train", True), ("smallcnn_bn_sgd_train", True),
                            ("smallcnn_bn_infer", False), ("resnet_tl_head_train", True)):
            src = CORPUS / "mindspore-2.10" / f"{name}.mindir"
            if src.exists():
                path = convert(str(src), os.path.join(d, name), train)
                out[f"converted_{name}.ms"] = Path(path).read_bytes()
    return out


def seed_dir() -> Path:
    work = WORK / "runtime" / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    sources = [p for base in (CORPUS / "lite-2.0", HOSTILE) if base.exists()
               for p in sorted(base.glob("*.ms"))]
    for p in sources:
        if p.stat().st_size <= MAX_SEED_BYTES:
            target = work / f"seed_{p.parent.name}_{p.name}"
            if not target.exists():
                target.write_bytes(p.read_bytes())
    for name, blob in converted_seeds().items():
        target = work / f"seed_{name}"
        if not target.exists():
            target.write_bytes(blob)
    return work


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    corpus = seed_dir()
    atheris.Setup([sys.argv[0], *libfuzzer_args("runtime", sys.argv[1:]), str(corpus)],
                  one_input)
    atheris.Fuzz()
