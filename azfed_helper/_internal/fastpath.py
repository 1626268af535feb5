"""Answer the no-op case of hot commands without building the argparse tree.

``azfed-helper write`` runs before other commands and from timers; when the token file is already
fresh, the interpreter's own start-up should be nearly all it costs. argparse (and the formatter
it sets up) costs about as much as the interpreter itself, so here the argument forms the option
table allows for the command are read directly. Anything unusual (an option the table does not
mark ``fast``, ``--help``, ``--force``, a value that does not parse, a file that is not fresh)
returns None and the normal argparse path handles it, so errors and real work always go through
one implementation. ``cli`` calls this inside its error boundary.
"""

from __future__ import annotations

from . import TYPE_CHECKING
from .config import resolve
from .options import for_command

if TYPE_CHECKING:
    from collections.abc import Sequence

    from .config import Settings
    from .option import Option


class _Flags:
    """A namespace holding only the parsed options (absent ones read as None in resolve)."""

    def __init__(self, values: dict[str, object]) -> None:
        self.__dict__.update(values)


def fast_tables(command: str) -> tuple[dict[str, Option], dict[str, Option]]:
    """``(options taking a value, bare flags)`` by flag, of the options the fast path reads."""
    values: dict[str, Option] = {}
    flags: dict[str, Option] = {}
    for option in for_command(command):
        if option.fast:
            for flag in option.flags:
                (values if option.takes_value else flags)[flag] = option
    return values, flags


def parse_simple(argv: Sequence[str], command: str) -> dict[str, object] | None:
    """Parse ``--opt value``, ``--opt=value`` and bare flags of ``command``; None for anything
    else. Repeatable options (``action="append"``) collect their values in a list."""
    values, flags = fast_tables(command)
    parsed: dict[str, object] = {}
    index = 0
    while index < len(argv):
        arg = argv[index]
        name, equals, inline = arg.partition("=")
        option = values.get(name)
        if option is not None:
            if equals:
                value = inline
            elif index + 1 < len(argv) and not argv[index + 1].startswith("-"):
                index += 1
                value = argv[index]
            else:
                return None
            if option.action == "append":
                collected = parsed.setdefault(option.dest, [])
                assert isinstance(collected, list)
                collected.append(value)
            else:
                parsed[option.dest] = value
        elif arg in flags:
            parsed[flags[arg].dest] = True
        else:
            return None
        index += 1
    return parsed


def try_fast_path(argv: Sequence[str]) -> int | None:
    """Exit code when the command needs no work, else None (take the normal path).

    Any error means "take the normal path", which does the same work and reports it properly.
    For ``az -- ARGS`` with nothing to do, this never returns: the process becomes az.
    """
    try:
        return _answer(argv)
    except BrokenPipeError:
        raise  # the token was printed to a reader that left: nothing to redo (cli.py)
    except Exception:
        return None


def _answer(argv: Sequence[str]) -> int | None:
    command, rest = argv[0], argv[1:]
    if command == "az":
        if "--" not in rest:
            return None
        rest, az_args = rest[: rest.index("--")], rest[rest.index("--") + 1 :]
    settings = _settings(command, rest)
    if settings is None:
        return None
    if command == "write":
        return 0 if settings.token_file and _write_is_noop(settings) else None
    if command == "token":
        return _token(settings)
    if not _az_is_current(settings):
        return None
    if command == "az":
        from .azcli.process import exec_az

        exec_az(settings.az, az_args)
    return 0


def _settings(command: str, argv: Sequence[str]) -> Settings | None:
    """The settings of a command line the fast path can read, else None."""
    parsed = parse_simple(argv, command)
    return None if parsed is None else resolve(_Flags(parsed))


def _write_is_noop(settings: Settings) -> bool:
    from .sync import current_if_fresh

    return current_if_fresh(settings) is not None


def _token(settings: Settings) -> int | None:
    """A cache hit for ``token``: printed without argparse or MSAL."""
    import os
    import time

    from . import formats
    from .entra import cache

    exec_info = os.environ.get("KUBERNETES_EXEC_INFO")
    if settings.output == "exec-credential":
        formats.exec_api_version(exec_info)
    hit = cache.lookup(settings, time.time())
    if hit is None:
        return None
    tenant, _ = settings.require_app()
    print(formats.render(settings.output, hit, tenant, exec_info))
    return 0


def _az_is_current(settings: Settings) -> bool:
    """True when az already holds our validated assertion: files only, no az process."""
    from .azcli import state

    return state.is_current(state.target_from_settings(settings))
