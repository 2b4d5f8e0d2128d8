"""The layer rules, checked: the pure core imports no Qt, nothing imports the entry point."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tests.test_server_cli import ROOT

PURE = [
    "app.network.protocol",
    "app.network.pieces",
    "app.network.rate_limit",
    "app.network.push",
    "app.filenames",
    "app.units",
    "app.download.layout",
    "app.download.problems",
    "app.download.part_state",
    "app.download.source",
    "app.download.engine",
    "app.download.transfer",
]


@pytest.mark.parametrize("module", PURE)
def test_the_pure_core_imports_no_qt(module):
    check = f"import sys, {module}; sys.exit(any(m.startswith('PySide6') for m in sys.modules))"
    assert subprocess.run([sys.executable, "-c", check], cwd=ROOT).returncode == 0, module


def test_no_module_imports_the_entry_point():
    """The old cycle: app/__main__ -> app/ui -> app/__main__ (and app/console)."""
    offenders = []
    for path in (ROOT / "app").rglob("*.py"):
        if path.name == "__main__.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module == "app.__main__":
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []


def test_the_index_server_does_not_import_the_peer_window():
    """What both windows share lives in app.display, not in the peer's app.ui."""
    offenders = []
    for path in (ROOT / "server_app").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            if any(name == "app.ui" or name.startswith("app.ui.") for name in names):
                offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
