"""Broken ``.ckpt`` files (issue 7 item 1) through ``load_checkpoint``: each must fail with an
error naming the file, of MindSpore's class (ValueError) or a todkit error, within a second.

The reader is the front end's (todkit/train/checkpoint.py).
"""

from __future__ import annotations

import time

import pytest

from todkit.core.errors import TodkitError

checkpoint = pytest.importorskip("todkit.train.checkpoint")
cp = pytest.importorskip("todkit.train.checkpoint_pb2")


def _ckpt(tag="w", dims=(2, 2), ttype="Float32", content=b"\0" * 16) -> bytes:
    m = cp.Checkpoint()
    v = m.value.add()
    v.tag = tag
    v.tensor.dims.extend(dims)
    v.tensor.tensor_type = ttype
    v.tensor.tensor_content = content
    return m.SerializeToString()


# name -> (file bytes, fragment of the message)
CASES = {
    "truncated": (lambda: _ckpt()[:9], "not a MindSpore checkpoint"),
    "garbage": (lambda: bytes(range(256)) * 3, "not a MindSpore checkpoint"),
    "empty": (lambda: b"", "the file is empty"),
    "content_not_whole_elements": (lambda: _ckpt(content=b"\0" * 15),
                                   "15 bytes of Float32 for shape [2, 2] (needs 16)"),
    # 2^64 elements wrap to 0 in int64 and would match the 0 bytes present
    "huge_dims_wrapping": (lambda: _ckpt(dims=(2**32, 2**32), content=b""),
                           "needs 73786976294838206464"),
    "negative_dims": (lambda: _ckpt(dims=(-1, -16)), "negative dims [-1, -16]"),
    "unknown_tensor_type": (lambda: _ckpt(ttype="Complex999"), "'Complex999'"),
    "empty_string_value": (lambda: _ckpt(ttype="str", dims=(), content=b""), "UTF-32"),
    "invalid_string_value": (lambda: _ckpt(ttype="str", dims=(), content=b"\xff" * 4),
                             "not UTF-32"),
    "non_utf8_tag": (lambda: _ckpt(tag="w").replace(b"\n\x01w", b"\n\x01\xff"),
                     "not UTF-8"),
    # found by fuzz/fuzz_ckpt.py: a dtype MindSpore writes but todkit's Tensor lacks (was a
    # bare TypeError from Tensor), and empty tensors whose dims NumPy refuses (were NumPy's
    # ValueError passed on)
    "fuzz_uint16_tensor": (lambda: _ckpt(ttype="UInt16", dims=(2,), content=b"\0" * 4),
                           "'UInt16', which a todkit Tensor cannot hold"),
    "fuzz_empty_dims_overflowing": (lambda: _ckpt(dims=(2**63 - 1, 3, 0, 0), content=b""),
                                    "dims [9223372036854775807, 3, 0, 0], which no tensor"),
    "fuzz_too_many_dims": (lambda: _ckpt(dims=(1,) * 40, content=b"\0" * 4),
                           "which no tensor can have (at most 32 dims"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_checkpoint_gives_an_error_naming_the_file(name, tmp_path):
    path = tmp_path / f"{name}.ckpt"
    make, fragment = CASES[name]
    path.write_bytes(make())
    start = time.perf_counter()
    with pytest.raises((ValueError, TodkitError)) as e:
        checkpoint.load_checkpoint(str(path))
    assert time.perf_counter() - start < 1.0
    assert str(path) in str(e.value) and fragment in str(e.value), str(e.value)


def test_directory_and_missing_file(tmp_path):
    folder = tmp_path / "d.ckpt"
    folder.mkdir()
    for path in (folder, tmp_path / "missing.ckpt"):
        with pytest.raises((ValueError, TodkitError), match=str(path)):
            checkpoint.load_checkpoint(str(path))


def test_a_uint_checkpoint_todkit_wrote_fails_to_load_with_the_type(tmp_path):
    np = pytest.importorskip("numpy")
    path = checkpoint.save_checkpoint([{"name": "u", "data": np.ones(3, np.uint32)}],
                                      str(tmp_path / "u"))
    with pytest.raises(checkpoint.CheckpointError, match="'UInt32', which a todkit Tensor"):
        checkpoint.load_checkpoint(path)
