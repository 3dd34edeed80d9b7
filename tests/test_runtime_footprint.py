"""What loading and training a model costs in resident memory beyond its own arrays.

On a small device every shared library counts: ``numpy.random`` (2.2 MB) is only for
models with random ops, and OpenSSL's libcrypto (3.6 MB, pulled in by ``hashlib``) for
nothing the runtime does. A fresh interpreter shows what a user's process imports.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys

from tests.test_runtime_graphs import train_graph
from todkit.core.digest import digest16
from todkit.opset.runctx import RunContext
from todkit.runtime.export import write_ms

TRAIN_AND_LIST_MODULES = """
import sys
import numpy as np
from todkit import lite
model = lite.Model()
model.build_from_file(sys.argv[1], lite.ModelType.MINDIR_LITE, lite.Context(1),
                      train_cfg=lite.TrainCfg())
data, label = model.get_inputs()
data.set_data_from_numpy(np.ones(data.shape, np.float32))
label.set_data_from_numpy(np.zeros(label.shape, np.int32))
model.set_train_mode(True)
for _ in range(3):
    model.run_step()
model.predict(model.get_inputs())
print(" ".join(sorted(sys.modules)))
"""


def test_training_a_model_without_random_ops_loads_neither_numpy_random_nor_openssl(tmp_path):
    path = tmp_path / "tiny.ms"
    write_ms(train_graph("adam"), path)
    out = subprocess.run([sys.executable, "-c", TRAIN_AND_LIST_MODULES, str(path)],
                         capture_output=True, text=True, check=True).stdout.split()
    assert "todkit.lite" in out
    assert "numpy.random" not in out
    assert "_hashlib" not in out


def test_rng_is_made_on_first_use_from_the_seed():
    rt = RunContext(seed=7)
    first = rt.rng.random(4)
    again = RunContext(seed=7).rng.random(4)
    assert (first == again).all()
    assert rt.rng is rt.rng


def test_digest16_is_blake2b_128():
    for data in (b"", b"abc", bytes(range(256)) * 9):
        assert digest16(data) == hashlib.blake2b(data, digest_size=16).digest()
