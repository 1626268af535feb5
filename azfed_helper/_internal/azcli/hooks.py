"""Shell hooks: a function named ``az`` that runs ``azfed-helper az ... -- ARGS`` in each shell."""

from __future__ import annotations

from .. import TYPE_CHECKING
from ..errors import UsageError

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
        import shlex

        line = " ".join(shlex.quote(word) for word in command)
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
