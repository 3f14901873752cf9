"""The verifier is pure: no module of `verifier/` but the CLI does network, file or clock access.

An AST scan of every module: imports of network, file-system and clock modules, calls of `open()`, of path and
file methods, and of clock reads are refused wherever they appear. The one exemption is named: the pinned roots
are package data of the verifier itself, read through importlib.resources by `verifier._x509.pinned_pem`.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

VERIFIER = Path(__file__).resolve().parents[2] / "verifier"
EDGE = {"cli.py"}  # the command-line edge reads files and the clock by design
# (module, function) pairs allowed to read files: package data only.
PACKAGE_DATA_READERS = {("_x509.py", "pinned_pem")}

NETWORK_MODULES = {"httpx", "requests", "urllib", "urllib3", "socket", "http", "aiohttp", "ssl", "asyncio"}
FILE_MODULES = {"os", "pathlib", "io", "shutil", "tempfile", "glob", "subprocess", "mmap", "fileinput"}
CLOCK_MODULES = {"time"}
FILE_METHODS = {
    "read_bytes",
    "read_text",
    "write_bytes",
    "write_text",
    "open",
    "iterdir",
    "glob",
    "rglob",
    "stat",
    "mkdir",
    "unlink",
    "exists",
    "is_file",
    "is_dir",
    "touch",
    "rename",
}
CLOCK_METHODS = {"now", "utcnow", "today", "time", "time_ns", "monotonic", "perf_counter"}
FILE_BUILTINS = {"open", "input"}


@dataclass(frozen=True)
class Finding:
    module: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"verifier/{self.module}:{self.line}: {self.what}"


class _Scanner(ast.NodeVisitor):
    def __init__(self, module: str) -> None:
        self.module = module
        self.function: list[str] = []
        self.findings: list[Finding] = []

    def _flag(self, node: ast.AST, what: str) -> None:
        self.findings.append(Finding(self.module, getattr(node, "lineno", 0), what))

    def _check_import(self, node: ast.AST, name: str) -> None:
        top = name.split(".", maxsplit=1)[0]
        for kind, modules in (("network", NETWORK_MODULES), ("file", FILE_MODULES), ("clock", CLOCK_MODULES)):
            if top in modules:
                self._flag(node, f"imports {name} ({kind} access)")

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._check_import(node, alias.name)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module is not None:
            self._check_import(node, node.module)

    def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
        self.function.append(node.name)
        self.generic_visit(node)
        self.function.pop()

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        if isinstance(func, ast.Name) and func.id in FILE_BUILTINS:
            self._flag(node, f"calls {func.id}() (file access)")
        if isinstance(func, ast.Attribute):
            exempt = any((self.module, name) in PACKAGE_DATA_READERS for name in self.function)
            if func.attr in FILE_METHODS and not exempt:
                self._flag(node, f"calls .{func.attr}() (file access)")
            if func.attr in CLOCK_METHODS:
                self._flag(node, f"calls .{func.attr}() (clock read)")
        self.generic_visit(node)


def scan(source: str, module: str) -> list[Finding]:
    scanner = _Scanner(module)
    scanner.visit(ast.parse(source))
    return scanner.findings


def modules() -> list[Path]:
    return sorted(p for p in VERIFIER.rglob("*.py") if p.relative_to(VERIFIER).as_posix() not in EDGE)


def test_the_scan_covers_the_verifier() -> None:
    names = {p.relative_to(VERIFIER).as_posix() for p in modules()}
    assert {"__init__.py", "_x509.py", "tdx/_verify.py", "snp/_verify.py", "tpm/_verify.py"} <= names
    assert "cli.py" not in names


def test_no_module_but_the_cli_does_network_file_or_clock_access() -> None:
    findings = [f for path in modules() for f in scan(path.read_text(), path.relative_to(VERIFIER).as_posix())]
    assert findings == [], "\n".join(map(str, findings))


@pytest.mark.parametrize(
    ("source", "what"),
    [
        ("import httpx", "imports httpx (network access)"),
        ("from urllib.request import urlopen", "imports urllib.request (network access)"),
        ("import socket", "imports socket (network access)"),
        ("import os.path", "imports os.path (file access)"),
        ("from pathlib import Path", "imports pathlib (file access)"),
        ("data = open('x').read()", "calls open() (file access)"),
        ("data = folder.read_bytes()", "calls .read_bytes() (file access)"),
        ("text = p.read_text()", "calls .read_text() (file access)"),
        ("import time", "imports time (clock access)"),
        ("from time import time", "imports time (clock access)"),
        ("t = datetime.now(UTC)", "calls .now() (clock read)"),
        ("t = datetime.utcnow()", "calls .utcnow() (clock read)"),
        ("d = date.today()", "calls .today() (clock read)"),
    ],
)
def test_the_scan_finds_each_kind_of_access(source: str, what: str) -> None:
    assert [f.what for f in scan(source, "tdx/_example.py")] == [what]


def test_only_the_named_package_data_reader_may_read() -> None:
    source = "def pinned_pem(package):\n    return entry.read_bytes()\n"
    assert scan(source, "_x509.py") == []
    assert [f.what for f in scan(source, "tdx/_chain.py")] == ["calls .read_bytes() (file access)"]
