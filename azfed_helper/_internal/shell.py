"""Text for POSIX shells: quoting and ``export`` lines, rendered in one place.

``env``, ``token -o env``, the managed-identity env file, ``serve --print-env``, the emulator's
exports and the printed az hooks all go through here. Standard library only and without ``shlex``
(which imports ``re``): ``token -o env`` is answered on the cache-hit fast path.
"""

from __future__ import annotations

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

# What shlex.quote leaves bare: ASCII letters, digits and @%+=:,./-_
_SAFE = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@%+=:,./-_")


def quote(word: str) -> str:
    """``word`` as one shell word, exactly as ``shlex.quote`` would write it."""
    if word and all(char in _SAFE for char in word):
        return word
    return "'" + word.replace("'", "'\"'\"'") + "'"


def exports(values: Mapping[str, str], unset: Iterable[str] = ()) -> str:
    """``export NAME=value`` lines, then ``unset NAME`` lines, without a final newline."""
    lines = [f"export {name}={quote(value)}" for name, value in values.items()]
    lines += [f"unset {name}" for name in unset]
    return "\n".join(lines)
