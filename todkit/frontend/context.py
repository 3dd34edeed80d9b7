"""``set_context`` / ``get_context`` so MindSpore scripts run unchanged. todkit always runs
cells eagerly (PyNative) and train steps and exports as traced graphs, on the CPU in NumPy, so
the settings are recorded and otherwise have no effect."""

from __future__ import annotations

GRAPH_MODE = 0
PYNATIVE_MODE = 1

_context = {"mode": PYNATIVE_MODE, "device_target": "CPU"}


def set_context(**kwargs) -> None:
    mode = kwargs.get("mode", _context["mode"])
    if mode not in (GRAPH_MODE, PYNATIVE_MODE):
        raise ValueError(f"mode must be GRAPH_MODE (0) or PYNATIVE_MODE (1), got {mode!r}")
    _context.update(kwargs)


def get_context(key: str):
    return _context.get(key)
