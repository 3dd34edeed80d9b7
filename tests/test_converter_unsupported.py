"""converter_lite on input it cannot convert: every missing op named at once with -300, and a
message saying which unsupported MINDIR feature (encryption, external weights, control flow);
nothing is written. Fixtures: tests/fixtures/mindir_bad/ (regenerate with its make.py)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

BAD = Path(__file__).resolve().parent / "fixtures" / "mindir_bad"
PREFIX = "Default/network-WithLossCell/_backbone-Tiny/fc-Dense/"


def convert(name: str, tmp_path):
    cmd = [sys.executable, "-m", "todkit.converter.cli", "--fmk=MINDIR", "--trainModel=true",
           f"--modelFile={BAD / name}", f"--outputFile={tmp_path / 'out'}"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    assert list(tmp_path.iterdir()) == [], "a failed conversion must write nothing"
    return r


def test_every_missing_op_and_its_nodes_at_once(tmp_path):
    r = convert("unknown_ops.mindir", tmp_path)
    assert r.returncode == (-300) & 0xFF
    assert r.stdout.strip().endswith("CONVERT RESULT FAILED:-300 Failed to find operator.")
    assert "UNSUPPORTED OP LIST:" in r.stderr
    fancy = next(ln for ln in r.stderr.splitlines() if "OP TYPE: FancyOp" in ln)
    for node in (f"{PREFIX}MatMul-op0", f"{PREFIX}BiasAdd-op0",
                 f"Gradients/{PREFIX}Grad_MatMul/MatMul-op0"):
        assert node in fancy
    other = next(ln for ln in r.stderr.splitlines() if "OP TYPE: OtherOp" in ln)
    assert f"Gradients/{PREFIX}Grad_BiasAdd/BiasAddGrad-op0" in other


@pytest.mark.parametrize("name, code, words", [
    ("encrypted.mindir", -200, "encrypted MINDIR files are not supported"),
    ("external_weights.mindir", -7, "keeps its data in an external file ('fc_weight.bin')"),
    ("control_flow.mindir", -7, "sub-graph(s) in ModelProto.functions (if_true_branch) uses "
                                "control flow"),
])
def test_unsupported_mindir_features_say_which(name, code, words, tmp_path):
    r = convert(name, tmp_path)
    assert r.returncode == code & 0xFF
    assert f"CONVERT RESULT FAILED:{code} " in r.stdout
    assert words in r.stderr and name in r.stderr
