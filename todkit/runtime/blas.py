"""The BLAS thread count NumPy's matrix products use, set from the runtime (standard library
ctypes only, as threadpoolctl does it).

Train steps of small models (LeNet, an MLP, a Dense head) make many small products; on a
small, shared CPU a second BLAS thread costs more in hand-offs than it computes (measured on
the 2-core bench machine: W3's 32x150528 by 10 products take 2.0-2.5 ms on one thread and
8-16 ms median on two). The session therefore runs its steps with ``threads`` BLAS threads
(default 1; ``None`` leaves BLAS as configured) and restores the previous count afterwards,
so NumPy code run between steps keeps its own setting (the count is process-wide: another
thread's products during a step run with the session's count too).
"""

from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_PAIRS = (("scipy_openblas_set_num_threads64_", "scipy_openblas_get_num_threads64_"),
          ("scipy_openblas_set_num_threads", "scipy_openblas_get_num_threads"),
          ("openblas_set_num_threads64_", "openblas_get_num_threads64_"),
          ("openblas_set_num_threads", "openblas_get_num_threads"))


def openblas_libraries():
    """The OpenBLAS shared libraries NumPy's wheel ships (Linux ``numpy.libs``, macOS
    ``.dylibs``), loaded; none for a NumPy built against another BLAS."""
    root = os.path.dirname(os.path.dirname(np.__file__))
    candidates = sorted(glob.glob(os.path.join(root, "numpy.libs", "*openblas*")))
    candidates += sorted(glob.glob(os.path.join(os.path.dirname(np.__file__), ".dylibs",
                                                "*openblas*")))
    for path in candidates:
        try:
            yield ctypes.CDLL(path)
        except OSError:
            continue


def _find() -> tuple | None:
    """(set, get) of the OpenBLAS NumPy is linked with, or None (another BLAS, or none)."""
    for lib in openblas_libraries():
        for set_name, get_name in _PAIRS:
            if hasattr(lib, set_name) and hasattr(lib, get_name):
                setter, getter = getattr(lib, set_name), getattr(lib, get_name)
                setter.argtypes, setter.restype = [ctypes.c_int], None
                getter.argtypes, getter.restype = [], ctypes.c_int
                return setter, getter
    return None


_API = _find()


def available() -> bool:
    return _API is not None


def get_threads() -> int | None:
    return _API[1]() if _API is not None else None


def set_threads(n: int) -> int | None:
    """Set the BLAS thread count; return the previous one (None if BLAS is not OpenBLAS)."""
    if _API is None:
        return None
    before = _API[1]()
    if before != n:
        _API[0](int(n))
    return before
