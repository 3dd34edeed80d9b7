"""converter_lite's command line: messages, streams and exit statuses of the real tool."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.shared_paths import CORPUS


def run(*args: str, cwd=None):
    """Run the converter as a user does: a separate process, checking its exit status."""
    cmd = [sys.executable, "-m", "todkit.converter.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=cwd)


def status(code: int) -> int:
    return code & 0xFF


def test_help_lists_flags_sorted_after_help():
    r = run("--help")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "" and lines[1] == "usage: converter_lite [options]"
    assert lines[2].startswith(" --help ")
    names = [ln.split("=")[0].strip()[2:] for ln in lines[3:] if ln.startswith(" --")]
    assert names == sorted(names) and "trainModel" in names and "fmk" in names


def test_no_arguments_prints_usage_and_flag_missing():
    r = run()
    assert r.returncode == status(-3)
    assert "usage: converter_lite [options]" in r.stdout
    assert "Flag missing. When in single model scenario" in r.stdout


def test_space_instead_of_equals():
    r = run("--fmk", "MINDIR", "--modelFile=a.mindir", "--outputFile=a")
    assert r.returncode == status(-600)
    assert "Failed: flag MINDIR is not valid." in r.stderr
    assert "Flags PreInit failed. Ret: -600" in r.stdout


def test_unknown_flag():
    r = run("--fmk=MINDIR", "--modelFile=a.mindir", "--outputFile=a", "--bogus=1")
    assert r.returncode == status(-600)
    assert "bogus is not a valid flag" in r.stderr


def test_flag_given_twice():
    r = run("--fmk=MINDIR", "--fmk=MINDIR", "--modelFile=a.mindir", "--outputFile=a")
    assert r.returncode == status(-600)
    assert "Failed: already parsed flag: fmk" in r.stderr


def test_train_model_value_check():
    r = run("--fmk=MINDIR", "--modelFile=a.mindir", "--outputFile=a", "--trainModel=yes")
    assert r.returncode == status(-600)
    assert "INPUT ILLEGAL: trainModel must be true|false" in r.stderr
    assert "Flags Init failed. Ret: -600" in r.stdout


def test_fmk_value_check():
    r = run("--fmk=KERAS", "--modelFile=a.mindir", "--outputFile=a")
    assert r.returncode == status(-600)
    assert "INPUT ILLEGAL: fmk must be TF|TFLITE|CAFFE|MINDIR|ONNX" in r.stderr


def test_train_model_needs_mindir(tmp_path):
    r = run("--fmk=ONNX", "--trainModel=true", f"--modelFile={tmp_path}/a.onnx",
            f"--outputFile={tmp_path}/a")
    assert r.returncode == status(-600)
    assert "INPUT ILLEGAL: train model converter supporting only MINDIR format" in r.stderr
    assert "CONVERT RESULT FAILED:-600 Invalid input param by user." in r.stdout
    assert list(tmp_path.iterdir()) == []


def test_missing_model_file(tmp_path):
    missing = tmp_path / "nope.mindir"
    r = run("--fmk=MINDIR", "--trainModel=true", f"--modelFile={missing}",
            f"--outputFile={tmp_path}/out")
    assert r.returncode != 0
    assert "CONVERT RESULT FAILED:" in r.stdout
    assert str(missing) in r.stderr
    assert list(tmp_path.iterdir()) == []


def test_not_a_mindir_file(tmp_path):
    bad = tmp_path / "bad.mindir"
    bad.write_bytes(b"this is not protobuf \xff\xfe\x00" * 10)
    r = run("--fmk=MINDIR", "--trainModel=true", f"--modelFile={bad}",
            f"--outputFile={tmp_path}/out")
    assert r.returncode != 0
    assert "CONVERT RESULT FAILED:" in r.stdout
    assert str(bad) in r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.mindir"]


@pytest.mark.parametrize("value", ["true", "on", "false", "off"])
def test_converts_a_real_mindir(tmp_path, value):
    src = CORPUS / "lite-2.0" / "tiny_momentum_train.ms210.mindir"
    if not src.exists():
        pytest.skip("corpus not present")
    r = run("--fmk=MINDIR", f"--trainModel={value}", f"--modelFile={src}",
            f"--outputFile={tmp_path}/tiny")
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.strip().splitlines()[-1] == "CONVERT RESULT SUCCESS:0"
    out = tmp_path / "tiny.ms"
    assert out.read_bytes()[4:8] == b"MSL2"
    assert os.listdir(tmp_path) == ["tiny.ms"]
