"""Coverage-guided fuzzing of the ``.ckpt`` reader (``todkit.train.checkpoint.load_checkpoint``).

    .venv/bin/python fuzz/fuzz_ckpt.py -runs=100000    # see README.md, "Fuzzing"

``load_checkpoint`` takes a path, so each input is written to one file in a RAM-backed
folder (``/dev/shm`` when there is one) and loaded from there. Seeds: the checkpoints in
tests/fixtures/ckpt/ and a few small ones made here with ``save_checkpoint`` (every dtype,
a scalar, an empty tensor, a str from ``append_dict``, a tensor split into chunks).

A finding, besides harness.check_outcome's: a ``CheckpointError`` that only wraps a bare
Python exception (``load_checkpoint`` turns any ``ValueError`` into one): the reader should
have said what is wrong itself, not passed on NumPy's message.

Most byte-level mutations of a protobuf stop in the (uninstrumented, C) protobuf parser, so
``-structured=1`` fuzzes the reader's own logic instead: each input is decoded with atheris's
``FuzzedDataProvider`` into a few ``Checkpoint.Value`` messages (tags that repeat as chunks do,
0-40 dims from tiny to int64's extremes, known and unknown tensor types, content of the
size the dims need or any other, map tensors, fields left unset) that are serialized and
loaded. Its working corpus is ``work/ckpt_structured/``.
"""

import math
import os
import sys
import tempfile
from pathlib import Path

import atheris
from harness import ROOT, WORK, check_outcome, libfuzzer_args

with atheris.instrument_imports(include=["todkit.train.checkpoint"]):
    import numpy as np

    from todkit.train import checkpoint
    from todkit.train.checkpoint_pb2 import Checkpoint

SCRATCH = Path(tempfile.mkdtemp(prefix="todkit-fuzz-ckpt-",
                                dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
TARGET = str(SCRATCH / "fuzz.ckpt")


def _load(data: bytes) -> None:
    with open(TARGET, "wb") as f:
        f.write(data)
    try:
        checkpoint.load_checkpoint(TARGET)
    except checkpoint.CheckpointError as e:
        cause = e.__cause__
        if isinstance(cause, ValueError) and not isinstance(cause, checkpoint.CheckpointError):
            raise AssertionError(f"bare ValueError wrapped: {e}") from cause
        raise


def one_input(data: bytes) -> None:
    check_outcome(_load, data)


TAGS = ["w", "w", "fc.weight", "", "a.b.c"]
TYPES = sorted(checkpoint._NP_OF_TYPE) + ["str", "Float32", "Int64", "", "Complex64"]
BIG_DIMS = [0, 1, 2, 3, -1, 2**31, 2**32, 2**62, 2**63 - 1, -2**63]


def structured(data: bytes) -> bytes:
    """A checkpoint built from ``data`` field by field (see the module's docstring)."""
    fdp = atheris.FuzzedDataProvider(data)
    msg = Checkpoint()
    for _ in range(fdp.ConsumeIntInRange(0, 5)):
        v = msg.value.add()
        k = fdp.ConsumeIntInRange(0, len(TAGS))
        if k < len(TAGS):
            v.tag = TAGS[k]
        elif fdp.ConsumeBool():
            v.tag = fdp.ConsumeUnicodeNoSurrogates(6)
        form = fdp.ConsumeIntInRange(0, 9)
        if form == 0:
            continue  # neither a tensor nor a map tensor
        tensors = [v.tensor] if form > 1 else [v.maptensor.tensor.add()
                                               for _ in range(fdp.ConsumeIntInRange(0, 2))]
        for t in tensors:
            n_dims = fdp.ConsumeIntInRange(0, 40) if fdp.ConsumeProbability() < 0.1 else \
                fdp.ConsumeIntInRange(0, 4)
            for _ in range(n_dims):
                t.dims.append(fdp.PickValueInList(BIG_DIMS) if fdp.ConsumeBool() else
                              fdp.ConsumeIntInRange(0, 6))
            if fdp.ConsumeProbability() < 0.95:
                t.tensor_type = fdp.PickValueInList(TYPES)
            np_type = checkpoint._NP_OF_TYPE.get(t.tensor_type, np.int32)
            need = math.prod(d for d in t.dims if 0 <= d < 64)
            need *= 4 if t.tensor_type == "str" else np.dtype(np_type).itemsize
            size = need if fdp.ConsumeBool() and need < 4096 else fdp.ConsumeIntInRange(0, 64)
            if fdp.ConsumeProbability() < 0.97:
                t.tensor_content = fdp.ConsumeBytes(size).ljust(size, b"\0")
    return msg.SerializePartialToString()


def one_structured_input(data: bytes) -> None:
    check_outcome(_load, structured(data))


def small_checkpoints() -> dict[str, bytes]:
    """Small valid checkpoints of every form save_checkpoint writes."""
    from todkit.frontend.parameter import Parameter
    from todkit.frontend.tensor import Tensor

    rng = np.random.default_rng(0)
    params = [Parameter(Tensor(rng.standard_normal((2, 3)).astype(np.float32)), name="fc.weight"),
              Parameter(Tensor(np.arange(3, dtype=np.int64)), name="step"),
              Parameter(Tensor(np.array(1.5, np.float16)), name="scale"),
              Parameter(Tensor(np.zeros((0, 4), np.float32)), name="empty"),
              Parameter(Tensor(np.array([True, False])), name="mask")]
    # every dtype a .ckpt holds, as {'name', 'data'} entries (todkit's Tensor has fewer)
    params += [{"name": f"x_{t}", "data": np.ones(2, t)} for t in
               ("int8", "uint8", "int16", "uint16", "int32", "uint32", "uint64", "float64")]
    out = {}
    with tempfile.TemporaryDirectory() as d:
        path = checkpoint.save_checkpoint(params, os.path.join(d, "all"),
                                          append_dict={"epoch_num": 3, "note": "héllo"})
        out["all_dtypes"] = Path(path).read_bytes()
        path = checkpoint.save_checkpoint(params[:1], os.path.join(d, "one"))
        out["one"] = Path(path).read_bytes()
        # a tensor in 3 chunks, as MindSpore writes a > 512 MiB one
        old, checkpoint.CHUNK_BYTES = checkpoint.CHUNK_BYTES, 8
        try:
            path = checkpoint.save_checkpoint(params[:2], os.path.join(d, "chunked"))
        finally:
            checkpoint.CHUNK_BYTES = old
        out["chunked"] = Path(path).read_bytes()
    return out


def seed_dir() -> Path:
    work = WORK / "ckpt" / "corpus"
    work.mkdir(parents=True, exist_ok=True)
    for p in sorted((ROOT / "tests" / "fixtures" / "ckpt").glob("*.ckpt")):
        target = work / f"seed_{p.name}"
        if not target.exists():
            target.write_bytes(p.read_bytes())
    for name, blob in small_checkpoints().items():
        (work / f"seed_small_{name}.ckpt").write_bytes(blob)
    return work


if __name__ == "__main__":
    args = sys.argv[1:]
    if "-structured=1" in args:
        args.remove("-structured=1")
        corpus = WORK / "ckpt_structured" / "corpus"
        corpus.mkdir(parents=True, exist_ok=True)
        atheris.Setup([sys.argv[0], *libfuzzer_args("ckpt_structured", args), str(corpus)],
                      one_structured_input)
    else:
        atheris.Setup([sys.argv[0], *libfuzzer_args("ckpt", args), str(seed_dir())], one_input)
    atheris.Fuzz()
