"""MindSpore's .ckpt format: a file written by real MindSpore 2.10 loads (every value, dtype
and shape), todkit's files round-trip and keep MindSpore's layout, load_param_into_net follows
MindSpore's rules. (That MindSpore loads todkit's files was checked by hand with
tests/fixtures/ckpt/make_lenet_ckpt.py's environment; mindspore is not a test dependency.)"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

import todkit as M
from todkit.models import LeNet5
from todkit.train.checkpoint import CHUNK_BYTES
from todkit.train.checkpoint_pb2 import Checkpoint

FIXTURES = Path(__file__).parent / "fixtures" / "ckpt"
MS_CKPT = FIXTURES / "lenet5_ms210.ckpt"


def test_mindspore_written_checkpoint_loads_exactly():
    params = M.load_checkpoint(str(MS_CKPT))
    ref = np.load(FIXTURES / "lenet5_ms210.npz")
    assert set(ref.files) <= set(params)
    for k in ref.files:
        got = params[k].asnumpy()
        assert got.dtype == ref[k].dtype and got.shape == ref[k].shape, k
        np.testing.assert_array_equal(got, ref[k], err_msg=k)
        assert params[k].name == k
    # append_dict entries: an int64 scalar, a float32 scalar and a string.
    assert params["epoch_num"].asnumpy().dtype == np.int64 and int(params["epoch_num"]) == 2
    assert float(params["lr_seen"]) == 0.5 and params["note"] == "todkit"
    assert params["global_step"].shape == (1,) and params["learning_rate"].shape == ()


def test_mindspore_weights_load_into_the_zoo_lenet():
    net = LeNet5()
    not_loaded, ckpt_left = M.load_param_into_net(net, M.load_checkpoint(str(MS_CKPT)))
    assert not_loaded == []
    assert "moments.fc1.weight" in ckpt_left and "conv1.weight" not in ckpt_left
    ref = np.load(FIXTURES / "lenet5_ms210.npz")
    np.testing.assert_array_equal(net.conv1.weight.asnumpy(), ref["conv1.weight"])
    np.testing.assert_array_equal(net.fc3.bias.asnumpy(), ref["fc3.bias"])


def test_round_trip_keeps_mindspore_layout(tmp_path):
    net = LeNet5()
    path = M.save_checkpoint(net, str(tmp_path / "a"), append_dict={"epoch": 3, "tag": "x"})
    assert (path.endswith("a.ckpt") and not os.access(path, os.W_OK)) or os.geteuid() == 0
    msg = Checkpoint()
    msg.ParseFromString(Path(path).read_bytes())
    first = msg.value[0]
    assert first.tag == "conv1.weight" and list(first.tensor.dims) == [6, 1, 5, 5]
    assert first.tensor.tensor_type == "Float32" and len(first.tensor.tensor_content) == 600
    by_tag = {v.tag: v.tensor for v in msg.value}
    assert list(by_tag["epoch"].dims) == [] and by_tag["epoch"].tensor_type == "Int64"
    assert list(by_tag["tag"].dims) == [0] and by_tag["tag"].tensor_type == "str"
    back = M.load_checkpoint(path)
    for p in net.get_parameters():
        np.testing.assert_array_equal(back[p.name].asnumpy(), p.asnumpy())
    assert back["tag"] == "x" and int(back["epoch"]) == 3
    M.save_checkpoint(net, path)  # replaces the read-only file, as MindSpore does


def test_chunked_tensors_are_joined(tmp_path, monkeypatch):
    import todkit.train.checkpoint as ck

    monkeypatch.setattr(ck, "CHUNK_BYTES", 64)
    w = M.Parameter(np.arange(100, dtype=np.float32).reshape(10, 10), name="w")
    path = M.save_checkpoint([w], str(tmp_path / "c.ckpt"))
    msg = Checkpoint()
    msg.ParseFromString(Path(path).read_bytes())
    assert len(msg.value) == 400 // 64 + 1 and all(v.tag == "w" for v in msg.value)
    np.testing.assert_array_equal(M.load_checkpoint(path)["w"].asnumpy(), w.asnumpy())
    assert CHUNK_BYTES == 512 * 1024 * 1024


def test_load_param_into_net_rules():
    net = LeNet5()
    good = {p.name: M.Parameter(np.ones(p.shape, np.float64), name=p.name)
            for p in net.get_parameters()}
    # float64 -> float32 converts unless strict_load (MindSpore's _type_convert).
    assert M.load_param_into_net(net, good) == ([], [])
    assert net.fc1.weight.asnumpy().dtype == np.float32 and net.fc1.weight.asnumpy()[0, 0] == 1
    with pytest.raises(RuntimeError, match="conv1.weight.*dtype float32 in the net but float64"):
        M.load_param_into_net(net, good, strict_load=True)
    bad = {"fc1.weight": M.Parameter(np.ones((3, 3), np.float32), name="fc1.weight")}
    with pytest.raises(RuntimeError, match="fc1.weight.*shape"):
        M.load_param_into_net(net, bad)
    # A wrapper's prefix is found and stripped (MindSpore's _load_dismatch_prefix_params).
    prefixed = {"network." + k: v for k, v in good.items()}
    assert M.load_param_into_net(LeNet5(), prefixed)[0] == []
    assert len(M.load_param_into_net(LeNet5(), prefixed, strict_load=True)[0]) == 8


def test_load_checkpoint_filters_and_errors(tmp_path):
    d = M.load_checkpoint(str(MS_CKPT), choice_func=lambda n: n.startswith("fc"))
    assert sorted(d) == ["fc1.bias", "fc1.weight", "fc2.bias", "fc2.weight", "fc3.bias",
                         "fc3.weight"]
    assert "conv1.weight" not in M.load_checkpoint(str(MS_CKPT), filter_prefix="conv")
    with pytest.raises(ValueError, match=r"\.ckpt"):
        M.load_checkpoint(str(tmp_path / "a.bin"))
    with pytest.raises(ValueError, match="does not exist"):
        M.load_checkpoint(str(tmp_path / "none.ckpt"))
    junk = tmp_path / "junk.ckpt"
    junk.write_bytes(b"\x0a\xff\xff\xff\xff\x0f")
    with pytest.raises(ValueError, match="not a MindSpore checkpoint"):
        M.load_checkpoint(str(junk))
