"""Shell hooks: a function named ``az`` that runs ``azfed-helper az ... -- ARGS`` in each shell."""

from __future__ import annotations

import os
import sys

from .. import TYPE_CHECKING
from ..errors import UsageError
from ..options import for_command
from ..paths import APP_NAME
from ..shell import quote

if TYPE_CHECKING:
    from collections.abc import Sequence

SHELLS = ("bash", "zsh", "fish", "powershell")


def _quote_fish(word: str) -> str:
    return "'" + word.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _quote_powershell(word: str) -> str:
    return "'" + word.replace("'", "''") + "'"


def hook_snippet(shell: str, command: Sequence[str]) -> str:
    """A function named ``az`` that runs ``command az ... -- ARGS`` (the hook, then the real az)."""
    if shell in ("bash", "zsh"):
        line = " ".join(quote(word) for word in command)
        return f'az() {{ {line} -- "$@"; }}\n'
    if shell == "fish":
        line = " ".join(_quote_fish(word) for word in command)
        return (
            "function az --wraps az --description 'az, kept logged in by azfed-helper'\n"
            f"    {line} -- $argv\nend\n"
        )
    if shell == "powershell":
        line = " ".join(_quote_powershell(word) for word in command)
        return f"function az {{ & {line} -- @args }}\n"
    raise UsageError(f"unknown shell {shell!r}", f"use one of: {', '.join(SHELLS)}")


def _self_command() -> list[str]:
    """How the hook calls us back from whatever directory ``az`` runs in: this console script by
    absolute path, else this interpreter isolated, importing this package from where it is now
    (never ``python -m``, which would import an ``azfed_helper`` planted in that directory)."""
    script = sys.argv[0]
    if os.path.basename(script) == APP_NAME and os.path.isfile(script):
        return [os.path.abspath(script)]
    from ..isolated import package_location, python_command

    return python_command("azfed_helper._internal.cli", [package_location()])


def hook_command(namespace: object) -> list[str]:
    """``azfed-helper az`` with the options of ``az`` given on this command line, as arguments.

    The hook runs later, from any directory, so path values are made absolute (a bare program
    name such as ``az`` stays a name looked up on PATH).
    """
    words = [*_self_command(), "az"]
    for option in for_command("az"):
        value = getattr(namespace, option.dest, None)
        if value is None or value is False:
            continue
        for item in value if isinstance(value, list) else [value]:
            if not option.takes_value:
                words.append(option.flag)
                continue
            text = str(item)
            if option.is_path or (option.dest == "az" and os.sep in text):
                text = os.path.abspath(text)
            words += [option.flag, text]
    return words
