"""todkit: MindSpore's Train-on-Device toolchain in Python and NumPy.

``import todkit as M`` gives MindSpore's top-level names (``M.nn``, ``M.Tensor``,
``M.Parameter``, ``M.float32``, ``M.set_seed``, ``M.export`` ...). They are imported on first
use, so ``import todkit.runtime`` on a device does not pull in the front end.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {"nn", "ops", "common", "train", "frontend", "core", "ir", "opset", "autodiff",
               "formats", "converter", "runtime", "lite", "context", "amp", "models"}

_FRONTEND = {"Tensor", "Parameter", "ParameterTuple", "set_seed"}
_CONTEXT = {"set_context", "get_context", "GRAPH_MODE", "PYNATIVE_MODE"}
_SERIALIZATION = {"export", "save_checkpoint", "load_checkpoint", "load_param_into_net"}
_DTYPES = {"bool_", "int8", "int16", "int32", "int64", "uint8", "float16", "float32",
           "float64"}


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f"todkit.{name}")
    if name in _FRONTEND:
        return getattr(importlib.import_module("todkit.frontend"), name)
    if name in _CONTEXT:
        return getattr(importlib.import_module("todkit.frontend.context"), name)
    if name in _SERIALIZATION:
        return getattr(importlib.import_module("todkit.train.serialization"), name)
    if name in _DTYPES:
        return getattr(importlib.import_module("todkit.core.dtypes"), name)
    if name == "dtype":
        return importlib.import_module("todkit.core.dtypes")
    raise AttributeError(f"module 'todkit' has no attribute {name!r}")


def __dir__():
    names = set(globals()) | _SUBMODULES | _FRONTEND | _CONTEXT | _DTYPES | _SERIALIZATION
    return sorted(names | {"dtype"})
