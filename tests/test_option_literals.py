"""Each option is declared once: its flag and variable are spelled only in the option table."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from azfed_helper._internal.options import OPTIONS

from .conftest import REPO

PACKAGE = REPO / "azfed_helper"
TABLE = "_internal/options.py"
# Strings that look like our flags but are other programs' or other commands' options.
NOT_OURS = {
    # the Azure CLI's own options, in the az command lines we run
    "_internal/azcli/process.py": {"--output", "--subscription"},
    "_internal/azcli/login.py": {"--output", "--subscription"},
    # the emulator command's own options (the emulated tenant, its env file), not settings
    "emulator/command.py": {"--tenant-id", "--client-id", "--env-file"},
    "_internal/commands/__init__.py": {"--env-file"},  # in the emulator command's example
}


def _literals(path: Path) -> list[str]:
    """String constants of a module, docstrings left out."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    return [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
    ]


def test_each_flag_and_variable_is_spelled_in_the_option_table_only() -> None:
    names = {flag for option in OPTIONS for flag in option.flags if flag.startswith("--")}
    names |= {option.env for option in OPTIONS if option.env}
    found: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        module = str(path.relative_to(PACKAGE))
        for literal in _literals(path):
            for name in names:
                if name in NOT_OURS.get(module, set()):
                    continue
                if re.search(rf"(?<![\w-]){re.escape(name)}(?![\w-])", literal):
                    found.setdefault(name, set()).add(module)
    elsewhere = {
        name: sorted(modules - {TABLE}) for name, modules in found.items() if modules - {TABLE}
    }
    assert elsewhere == {}
