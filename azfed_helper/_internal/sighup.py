"""SIGHUP for the long-running commands (``daemon``, ``serve``): a request, never death.

``daemon`` refreshes the token on SIGHUP and ``serve`` re-reads ``--secret-file``; both install
their handlers when they start running, but building the parser and importing the command take
most of start-up (~150 ms). The CLI calls :func:`hold` before that, so a SIGHUP in the meantime
is remembered, and the command takes it over with :func:`take`.
"""

from __future__ import annotations

import signal

from . import TYPE_CHECKING

if TYPE_CHECKING:
    from types import FrameType

_held: list[int] = []


def _remember(signum: int, frame: FrameType | None) -> None:
    _held.append(signum)  # list.append is atomic: safe in a signal handler


def hold() -> None:
    """From now on a SIGHUP is remembered instead of ending the process."""
    signal.signal(signal.SIGHUP, _remember)


def take() -> bool:
    """Whether a SIGHUP came since :func:`hold`; forgets it. Call after installing the
    command's own handler, so none falls between the two."""
    held = bool(_held)
    _held.clear()
    return held
