"""Shared test helpers live in `_`-prefixed modules (`tests/tdx/_vectors.py`, `tests/integration/_helpers.py`, ...).

A test module that imports another test module runs that module's import-time code twice over and ties the two
together: moving or renaming a test then breaks an unrelated one.
"""

from __future__ import annotations

import ast

from tests.conftest import ROOT

TESTS = ROOT / "tests"


def imported_modules(tree: ast.Module) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module is not None:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
        elif isinstance(node, ast.ImportFrom | ast.Import):  # `from . import x`, `import x`
            names += [alias.name for alias in node.names]
    return names


def test_no_module_imports_a_test_module() -> None:
    offenders = []
    for path in sorted(TESTS.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for name in imported_modules(tree):
            if any(part.startswith("test_") for part in name.split(".")):
                offenders.append(f"{path.relative_to(ROOT)}: {name}")
    assert offenders == []
