"""Security (issue 7 item 7): nothing in a file is ever evaluated or unpickled.

Scans every module of the todkit package (syntax tree, so strings and comments do not count)
for the ways Python can run code hidden in data: pickle and its relatives, eval/exec/compile,
``np.load(..., allow_pickle=True)``, ``yaml.load``, ``__import__`` and ``import_module`` of a
name that is not a literal ``todkit.`` module. A hit fails with the file and line.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "todkit"
UNSAFE_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "joblib",
                  "cloudpickle"}
UNSAFE_BUILTINS = {"eval", "exec", "compile", "__import__"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _literal_todkit_module(arg: ast.AST) -> bool:
    """``"todkit.x"`` or ``f"todkit.{name}"``: only todkit's own modules can be named."""
    if isinstance(arg, ast.Constant):
        return isinstance(arg.value, str) and arg.value.startswith("todkit")
    if isinstance(arg, ast.JoinedStr) and arg.values:
        head = arg.values[0]
        return isinstance(head, ast.Constant) and str(head.value).startswith("todkit.")
    return False


def problems_in(source: str, where: str) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(source)):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""]
            found += [f"{line}: imports {n}" for n in names
                      if n.split(".")[0] in UNSAFE_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func = _dotted(node.func)
        keywords = {k.arg: k.value for k in node.keywords}
        if func in UNSAFE_BUILTINS:
            found.append(f"{line}: calls {func}()")
        if func.endswith(".load") and func.split(".")[0] in ("np", "numpy"):
            flag = keywords.get("allow_pickle")
            if flag is not None and not (isinstance(flag, ast.Constant) and flag.value is False):
                found.append(f"{line}: {func}(allow_pickle=...) may unpickle file data")
        if func in ("yaml.load", "yaml.unsafe_load"):
            found.append(f"{line}: {func}() can build arbitrary objects")
        if func.endswith("import_module") and not (node.args and
                                                   _literal_todkit_module(node.args[0])):
            found.append(f"{line}: import_module of a name that is not a todkit module")
    return found


def test_no_module_evaluates_or_unpickles_file_data():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20
    found = [p for f in files for p in problems_in(f.read_text(), str(f.relative_to(PACKAGE)))]
    assert not found, "\n".join(found)


@pytest.mark.parametrize("source", [
    "import pickle", "from pickle import loads", "import marshal as m",
    "eval(s)", "exec(code)", "__import__(name)",
    "np.load(p, allow_pickle=True)", "numpy.load(p, allow_pickle=flag)",
    "yaml.load(f)", "importlib.import_module(name)",
])
def test_the_scan_sees_each_pattern(source):
    assert problems_in(source, "x.py")


@pytest.mark.parametrize("source", [
    "np.load(p)", "np.load(p, allow_pickle=False)", "model.eval()",
    "importlib.import_module(f'todkit.{name}')", "s = 'eval(x)'  # pickle",
])
def test_the_scan_passes_safe_code(source):
    assert problems_in(source, "x.py") == []
