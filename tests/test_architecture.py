"""The import directions of docs/ARCHITECTURE.md, checked on the source and at run time."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "todkit"

# package -> the todkit packages it may import (besides itself).
ALLOWED = {
    "core": set(),
    "ir": {"core"},
    "opset": {"core", "ir"},
    "autodiff": {"core", "ir", "opset"},
    "frontend": {"core", "ir", "opset", "autodiff"},
    "formats.mindir": {"core", "ir", "opset", "formats"},
    "formats.ms": {"core", "ir", "opset", "formats"},
    "formats": {"core", "ir", "opset", "formats.mindir", "formats.ms"},
    "runtime": {"core", "ir", "opset", "formats", "formats.ms"},
    "lite": {"core", "ir", "opset", "formats", "formats.ms", "runtime"},
    "converter": {"core", "ir", "opset", "formats", "formats.mindir", "formats.ms"},
    # MindSpore's module paths over the front end; train/serialization also writes MINDIR.
    "nn": {"core", "ir", "opset", "autodiff", "frontend"},
    "ops": {"core", "ir", "opset", "autodiff", "frontend"},
    "common": {"core", "ir", "opset", "autodiff", "frontend"},
    "train": {"core", "ir", "opset", "autodiff", "frontend", "formats", "formats.mindir"},
    "models": {"core", "ir", "opset", "autodiff", "frontend", "nn", "ops", "common"},
    "context": {"core", "frontend"},
    "amp": {"core", "ir", "opset", "autodiff", "frontend"},
}
# What the device side may import from outside todkit: NumPy, flatbuffers, the stdlib.
DEVICE = {"core", "ir", "opset", "formats.ms", "runtime", "lite"}
DEVICE_THIRD_PARTY = {"numpy", "flatbuffers"}


def _package_of(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "todkit" or len(parts) < 2:
        return None
    if parts[1] == "formats" and len(parts) > 2:
        return f"formats.{parts[2]}"
    return parts[1]


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    mod = "todkit." + ".".join(path.relative_to(ROOT).with_suffix("").parts)
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = mod.split(".")[: -node.level]
                found.append(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                found.append(node.module)
                found += [f"{node.module}.{a.name}" for a in node.names]
    return found


def _sources():
    for path in sorted(ROOT.rglob("*.py")):
        if path.name.endswith("_pb2.py"):
            continue
        pkg = _package_of("todkit." + ".".join(path.relative_to(ROOT).with_suffix("").parts))
        if pkg in ALLOWED:
            yield path, pkg


def test_import_directions():
    bad = []
    for path, pkg in _sources():
        for name in _imports(path):
            target = _package_of(name)
            if target is None or target == pkg:
                continue
            if pkg.startswith("formats.") and target == "formats":
                continue
            if target in ALLOWED and target not in ALLOWED[pkg]:
                bad.append(f"{path.relative_to(ROOT.parent)} ({pkg}) imports {name}")
    assert not bad, "imports against the architecture:\n" + "\n".join(bad)


def test_device_side_third_party_imports():
    bad = []
    for path, pkg in _sources():
        if pkg not in DEVICE:
            continue
        for name in _imports(path):
            top = name.split(".")[0]
            if top in ("todkit", "__future__") or top in sys.stdlib_module_names:
                continue
            if top not in DEVICE_THIRD_PARTY:
                bad.append(f"{path.relative_to(ROOT.parent)} imports {name}")
    assert not bad, "device-side modules import beyond NumPy/flatbuffers/stdlib:\n" + "\n".join(bad)


def test_runtime_loads_without_front_end_or_protobuf():
    code = ("import sys, todkit.lite; "
            "bad = [m for m in sys.modules if m.startswith(('google', 'todkit.frontend', "
            "'todkit.autodiff', 'todkit.formats.mindir', 'todkit.nn'))]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
