"""The device runtime: load a graph, plan its memory once, run train and eval steps.

Imports only todkit.core, todkit.ir, todkit.opset, todkit.formats.ms, NumPy, flatbuffers and
the standard library (tests/test_runtime.py enforces it). Public API: ``todkit.lite``.
"""

from todkit.runtime.planner import ArenaPlan, Buffer, plan_arena
from todkit.runtime.roles import DEFAULT_LOSS_NAMES, GraphRoles, find_roles
from todkit.runtime.session import Session

__all__ = [
           "DEFAULT_LOSS_NAMES",
           "ArenaPlan",
           "Buffer",
           "GraphRoles",
           "Session",
           "find_roles",
           "plan_arena",
]
