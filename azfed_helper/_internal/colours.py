"""Colour for status words on a terminal: whether a stream gets it, and the escape codes.

Only a terminal gets colour, and never when ``NO_COLOR`` holds any non-empty value
(https://no-color.org) or ``TERM`` is ``dumb``: piped output, logs and probes stay plain text.
Colour wraps words we write ourselves (``PASS``, ``NOT OK``); text a token, a file or a server
controls is escaped first (``logs.printable``) and never coloured, so escaping cannot mangle our
codes and untrusted text cannot bring its own. Standard library only, and light.
"""

from __future__ import annotations

import os

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from typing import TextIO

GREEN, RED, YELLOW = "32", "31", "33"
_RESET = "\x1b[0m"


def enabled(stream: TextIO) -> bool:
    """Should text written to ``stream`` carry colour?"""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, OSError, ValueError):  # replaced or closed streams
        return False


def paint(word: str, colour: str, on: bool) -> str:
    """``word`` in ``colour`` when ``on``, else unchanged. ``word`` must be our own text."""
    return f"\x1b[{colour}m{word}{_RESET}" if on else word
