"""Answer the no-op case of hot commands without building the argparse tree.

``azfed-helper write`` runs before other commands and from timers; when the token file is already
fresh, the interpreter's own start-up should be nearly all it costs. argparse (and the formatter
it sets up) costs about as much as the interpreter itself, so here we read the simple argument
forms directly. Anything unusual (an unknown option, ``--help``, ``--force``, a value that does
not parse, a file that is not fresh) returns None and the normal argparse path handles it, so
errors and real work always go through one implementation.
"""

from __future__ import annotations

from . import TYPE_CHECKING
from .config import resolve
from .errors import AzfedError

if TYPE_CHECKING:
    from collections.abc import Sequence

# Options of `write` (kept equal to its argparse declaration by tests/test_fastpath.py).
WRITE_VALUES = {
    "--token-file": "token_file",
    "--audience": "audience",
    "--credentials": "credentials",
    "--impersonate": "impersonate",
    "--token-format": "token_format",
    "--refresh-margin": "refresh_margin",
    "--source-timeout": "source_timeout",
    "--iam-endpoint": "iam_endpoint",
    "--mode": "mode",
    "--group": "group",
}
WRITE_FLAGS = {"--create-dirs": "create_dirs", "-q": "quiet", "--quiet": "quiet"}


class _Flags:
    """A namespace holding only the parsed options (absent ones read as None in resolve)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def parse_simple(
    argv: Sequence[str], values: dict[str, str], flags: dict[str, str]
) -> dict[str, object] | None:
    """Parse ``--opt value``, ``--opt=value`` and bare flags; None for anything else."""
    parsed: dict[str, object] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, equals, inline = arg.partition("=")
        if name in values:
            if equals:
                parsed[values[name]] = inline
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                parsed[values[name]] = argv[index]
            else:
                return None
        elif arg in flags:
            parsed[flags[arg]] = True
        else:
            return None
        index += 1
    return parsed


def try_fast_path(argv: Sequence[str]) -> int | None:
    """Exit code when the command needs no work, else None (take the normal path)."""
    if argv[0] != "write":
        return None
    parsed = parse_simple(argv[1:], WRITE_VALUES, WRITE_FLAGS)
    if parsed is None:
        return None
    from .sync import current_if_fresh

    try:
        settings = resolve(_Flags(parsed))
        if settings.token_file and current_if_fresh(settings) is not None:
            return 0
    except AzfedError:
        pass  # the normal path reports it properly
    return None
